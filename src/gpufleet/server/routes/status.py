"""`GET /v1/status`: the fleet on one screen (`gpufleet status`): providers, clusters, the queue and, for an
admin, this month's spend and the commitments at risk of leaving committed dollars unspent."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...store import tables as T
from ..auth import Principal
from ..schemas import errors
from ..spend import window_bill
from . import Ctx

ACTIVE = ("queued", "placed", "running")
DAY = 86_400.0


def month_start(now: float) -> float:
    t = datetime.fromtimestamp(now, tz=timezone.utc)
    return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def providers(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c in clusters:
        p = out.setdefault(c["provider"], {"provider": c["provider"], "clusters": 0, "clusters_down": 0,
                                           "gpus": 0, "used_gpus": 0, "free_gpus": 0, "failed_gpus": 0})
        p["clusters"] += 1
        p["clusters_down"] += 0 if c["up"] else 1
        for k in ("gpus", "used_gpus", "free_gpus", "failed_gpus"):
            p[k] += c[k]
    return sorted(out.values(), key=lambda p: p["provider"])


def at_risk(bill: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """Each spend commitment drawn behind its schedule: at this pace, the dollars left undrawn at term end
    (take-or-pay: paid for all the same). Judged after a day of billing, not before."""
    out: list[dict[str, Any]] = []
    if now - bill["since"] < DAY:
        return out
    for k in bill["contracts"]:
        pace = k.get("pace")
        if k["kind"] != "spend_commitment" or pace is None or pace >= 1.0:
            continue
        out.append({"contract": k["contract"], "provider": k["provider"], "committed_usd": k["committed_usd"],
                    "drawn_usd": k["usd"], "on_schedule_usd": k["on_schedule_usd"], "pace": pace,
                    "end": k["end"], "projected_shortfall_usd": k["committed_usd"] * (1.0 - pace)})
    return sorted(out, key=lambda k: -k["projected_shortfall_usd"])


def add(app: FastAPI, ctx: Ctx) -> None:
    control, db, clock = ctx.control, ctx.db, ctx.clock
    Who = Annotated[Principal, Depends(ctx.principal)]

    @app.get("/v1/status", tags=["dashboard"], responses=errors(401))
    def get_status(who: Who) -> dict[str, Any]:
        """The fleet now. A team token sees the clusters and its own team's queue; `spend` and
        `commitments_at_risk` are null for it."""
        snap, now = control.snapshot, clock()
        clusters = [dict(c) for c in snap.clusters]
        q = select(T.Job.state, func.count(), func.coalesce(func.sum(T.Job.gpus), 0)).where(
            T.Job.state.in_(ACTIVE)).group_by(T.Job.state)
        if not who.admin:
            q = q.where(T.Job.team == who.team)
        doc: dict[str, Any] = {"portfolio": snap.portfolio.scenario.name if snap.portfolio else None, "at": now,
                               "team": None if who.admin else who.team, "providers": providers(clusters),
                               "clusters": clusters, "spend": None, "commitments_at_risk": None}
        with Session(db) as s:
            counts = {state: (int(n), int(g)) for state, n, g in s.execute(q)}
            doc["queue"] = {state: {"jobs": counts.get(state, (0, 0))[0], "gpus": counts.get(state, (0, 0))[1]}
                            for state in ACTIVE}
            if who.admin and snap.portfolio is not None:
                first = s.scalar(select(func.min(T.PortfolioVersion.loaded_at))) or now
                m0 = max(month_start(now), first)
                month = window_bill(s, snap.portfolio, m0, now)
                term = window_bill(s, snap.portfolio, first, now)
                term["since"] = first
                doc["spend"] = {"since": m0, "usd": month["total_usd"],
                                "providers": [{"provider": p["provider"], "usd": p["usd"]} for p in month["providers"]]}
                doc["commitments_at_risk"] = at_risk(term, now)
        return doc
