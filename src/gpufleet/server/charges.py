"""Money moved through a backend: a Capacity Block bought on the fleet's behalf, recorded before and after.

The control loop commits a pending charge (one per offering, checked against the cluster and a price cap)
before the purchase, and settles it afterwards as done, failed or unknown (no answer: it may have gone
through; the reservation carries the tag gpufleet:charge=<id>). Backends are reached only through the
`CapacitySeller` protocol.
"""

from __future__ import annotations

from typing import Any, Callable, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..backends.base import BackendSet, CapacitySeller
from ..placement.engine import Engine
from ..store import tables as T
from .commands import Refused, ReserveCharge, SettleCharge

EventFn = Callable[..., None]


def seller(backends: BackendSet, name: str) -> Any:
    """The backend `name` if it sells Capacity Blocks, else Refused."""
    b = backends.backends.get(name)
    if b is None:
        raise Refused(f"no backend {name!r} is configured on this server", 404)
    if not hasattr(b, "buy_capacity_block"):
        raise Refused(f"backend {name!r} does not sell capacity blocks (the aws backend does)")
    return b


def reserve(s: Session, c: ReserveCharge, eng: Engine, backends: BackendSet, now: float) -> dict:
    b = cast(CapacitySeller, seller(backends, c.backend))
    mine = [cs for cs in eng.state.clusters if (cs.spec.backend or backends.default) == c.backend]
    if c.cluster is not None:
        cs = next((x for x in mine if x.name == c.cluster), None)
        if cs is None:
            raise Refused(f"cluster {c.cluster!r} is not served by backend {c.backend!r}", 404)
    elif len(mine) == 1:
        cs = mine[0]
    else:
        raise Refused(f"backend {c.backend!r} serves {len(mine)} clusters: name the one the block is for")
    offer = b.offering(c.offering_id)
    if offer is None:
        raise Refused(f"no known offering {c.offering_id!r}: find offerings first", 404)
    if offer.get("UpfrontFee") is None:
        raise Refused(f"offering {c.offering_id} has no upfront fee to check and record")
    fee = float(offer["UpfrontFee"])
    if c.max_usd is not None and fee > c.max_usd:
        raise Refused(f"offering {c.offering_id} costs ${fee:,.2f}, more than the ${c.max_usd:,.2f} allowed")
    seen = s.scalars(select(T.Charge).where(T.Charge.offering_id == c.offering_id)).first()
    if seen is not None:
        raise Refused(f"offering {c.offering_id} is already charge {seen.id} ({seen.status})", 409)
    row = T.Charge(at=now, provider=cs.provider, cluster=cs.name, backend=c.backend,
                   kind="capacity_block", usd=fee, status="pending", offering_id=c.offering_id,
                   actor=c.actor, detail={"offering": b.describe_offering(offer)})
    s.add(row)
    s.flush()
    return {"charge_id": row.id, "cluster": cs.name, "provider": cs.provider, "usd": fee}


def settle(s: Session, c: SettleCharge, backends: BackendSet, event: EventFn) -> tuple[dict, bool]:
    """Settle a pending charge; returns (the answer, whether money moved)."""
    row = s.get(T.Charge, c.charge_id)
    if row is None or row.status != "pending":
        raise Refused(f"no pending charge {c.charge_id}", 404)
    row.status = c.status
    detail = dict(row.detail or {})
    if c.bought is not None:
        b = backends.backends.get(row.backend)
        bought = b.describe_reservation(c.bought) if hasattr(b, "describe_reservation") else dict(c.bought)
        detail["reservation"] = bought
        row.ref = bought.get("id")
        if bought.get("cost_usd") is not None:
            row.usd = float(bought["cost_usd"])
    if c.error:
        detail["error"] = c.error
    row.detail = detail
    what = f"capacity block {row.ref or row.offering_id} for {row.cluster} through {row.backend}"
    if c.status == "done":
        event(s, c.actor, "charge", None, f"{what} bought: ${row.usd:,.2f}",
              detail={"charge": row.id, "kind": row.kind, "cluster": row.cluster, "provider": row.provider,
                      "usd": row.usd, "reservation": detail.get("reservation")})
    else:
        event(s, c.actor, "charge_failed", None, f"{what} {c.status}: {c.error or ''}".rstrip(": "),
              detail={"charge": row.id, "status": c.status, "offering": row.offering_id})
    return ({"charge_id": row.id, "status": row.status, "backend": row.backend, "cluster": row.cluster,
             "provider": row.provider, "usd": row.usd, "reservation": detail.get("reservation")},
            c.status == "done")
