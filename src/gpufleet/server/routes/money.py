"""What the fleet cost, and Capacity Blocks bought through a backend."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...backends.base import BackendError, BackendUnavailable
from ...store import tables as T
from ..auth import Principal
from ..commands import ReserveCharge, SettleCharge
from ..schemas import CapacityBlockIn, Name, When, errors
from ..spend import window_bill
from . import Ctx


def _utc(t: datetime) -> datetime:
    """A time without a zone is UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def add(app: FastAPI, ctx: Ctx) -> None:
    control, db, clock, run = ctx.control, ctx.db, ctx.clock, ctx.run
    Admin = Annotated[Principal, Depends(ctx.admin)]

    # -- money --------------------------------------------------------------------------------------------
    @app.get("/v1/spend", tags=["spend"], responses=errors(401, 403, 404, 422))
    def get_spend(who: Admin,
                  since: Annotated[When | None, Query(description="default: the first portfolio; not in the future "
                                                                  "(422)")] = None,
                  until: Annotated[When | None, Query(description="default (and at most): now; not before `since` "
                                                                  "(422)")] = None
                  ) -> dict[str, Any]:
        """What the fleet has cost: usage priced under the contracts plus fees, per provider and contract."""
        portfolio = control.snapshot.portfolio
        if portfolio is None:
            raise HTTPException(404, "no portfolio is loaded yet")
        now = clock()
        with Session(db) as s:
            first = s.scalar(select(func.min(T.PortfolioVersion.loaded_at))) or now
            t0 = _utc(since).timestamp() if since is not None else first
            t1 = min(now, _utc(until).timestamp()) if until is not None else now  # nothing is billed ahead
            if (until is not None and _utc(until).timestamp() < t0) or t0 > now:
                raise HTTPException(422, "since/until: the window must start before it ends, and not in the future")
            bill = window_bill(s, portfolio, t0, t1, teams=True)
            unsettled = [{"charge": c.id, "at": c.at, "status": c.status, "provider": c.provider, "cluster": c.cluster,
                          "usd": c.usd, "offering_id": c.offering_id, "ref": c.ref}
                         for c in s.scalars(select(T.Charge).where(T.Charge.status.in_(("pending", "unknown"))))]
        bill["since"] = t0
        bill["unsettled"] = unsettled
        return bill

    @app.get("/v1/backends/{name}/capacity-blocks", tags=["spend"],
             responses=errors(400, 401, 403, 404, 422, 502, 503))
    async def find_capacity_blocks(name: Name, who: Admin,
                                   instance_type: Annotated[str, Query(
                                       min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$",
                                       description="e.g. p5.48xlarge, u-p6e-gb200x72")],
                                   count: Annotated[int, Query(ge=1, le=10_000)] = 1,
                                   hours: Annotated[int, Query(ge=1, le=24 * 366)] = 24) -> dict[str, Any]:
        """Capacity Block offerings the backend can buy, cheapest first (asked outside the control loop)."""
        b = control.seller(name)
        try:
            offers = await run_in_threadpool(b.find_capacity_blocks, instance_type, count, hours)
        except BackendUnavailable as e:
            raise HTTPException(503, str(e)) from e
        except BackendError as e:
            raise HTTPException(502, str(e)) from e
        return {"backend": name, "offerings": [b.describe_offering(o) for o in offers]}

    @app.post("/v1/backends/{name}/capacity-blocks", tags=["spend"], status_code=201,
              responses=errors(400, 401, 403, 404, 409, 422, 502, 503))
    async def buy_capacity_block(name: Name, body: CapacityBlockIn, who: Admin) -> dict[str, Any]:
        """Buy an offering found above for one of the backend's clusters. A pending charge is committed first
        (one per offering), the purchase is made outside the control loop, then the charge is settled."""
        held = await run(ReserveCharge(who.actor, name, body.offering_id, body.cluster, body.max_usd))
        cid = held["charge_id"]
        try:
            bought = await run_in_threadpool(control.seller(name).buy_capacity_block, body.offering_id, None,
                                             {"gpufleet:charge": str(cid)})
        except BackendUnavailable as e:  # no answer: it may have gone through
            await run(SettleCharge(who.actor, cid, "unknown", error=str(e)))
            raise HTTPException(503, f"no answer from backend {name}; the purchase may have gone through: charge "
                                     f"{cid} is marked unknown (its reservation would carry the tag "
                                     f"gpufleet:charge={cid}): {e}") from e
        except BackendError as e:
            await run(SettleCharge(who.actor, cid, "failed", error=str(e)))
            raise HTTPException(502, f"backend {name} did not sell it: {e}") from e
        return await run(SettleCharge(who.actor, cid, "done", bought=bought))
