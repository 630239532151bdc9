"""The portfolio, teams and capacity (failed or repaired domains, clusters, providers)."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...model.base import Name as ModelName
from ...store import tables as T
from ..auth import Principal
from ..commands import LoadPortfolio, MarkCapacity, PutTeam
from ..schemas import CapacityIn, PortfolioIn, TeamIn, errors
from . import Ctx


def add(app: FastAPI, ctx: Ctx) -> None:
    control, db, run = ctx.control, ctx.db, ctx.run
    Who = Annotated[Principal, Depends(ctx.principal)]
    Admin = Annotated[Principal, Depends(ctx.admin)]

    # -- portfolio ----------------------------------------------------------------------------------------
    @app.get("/v1/portfolio", tags=["portfolio"], responses=errors(401, 404))
    def get_portfolio(who: Who) -> dict[str, Any]:
        snap = control.snapshot
        p = snap.portfolio
        if p is None:
            raise HTTPException(404, "no portfolio is loaded yet")
        with Session(db) as s:
            version = s.scalar(select(func.max(T.PortfolioVersion.id)))
        return {"name": p.scenario.name, "version": version, "clusters": [dict(c) for c in snap.clusters]}

    @app.put("/v1/portfolio", tags=["portfolio"], responses=errors(400, 401, 403, 422, 503))
    async def put_portfolio(body: PortfolioIn, who: Admin) -> dict[str, Any]:
        return await run(LoadPortfolio(who.actor, body.scenario, body.source))

    # -- teams --------------------------------------------------------------------------------------------
    @app.get("/v1/teams", tags=["teams"], responses=errors(401))
    def list_teams(who: Who) -> list[dict[str, Any]]:
        with Session(db) as s:
            q = select(T.Team).order_by(T.Team.name)
            if not who.admin:
                q = q.where(T.Team.name == who.team)
            used = control.snapshot.team_used
            return [{"name": t.name, "quota_gpus": t.quota_gpus, "cohort": t.cohort,
                     "borrowing_limit": t.borrowing_limit, "used_gpus": used.get(t.name, 0)} for t in s.scalars(q)]

    @app.put("/v1/teams/{name}", tags=["teams"], responses=errors(400, 401, 403, 422, 503))
    async def put_team(name: ModelName, body: TeamIn, who: Admin) -> dict[str, Any]:
        return await run(PutTeam(who.actor, name, body.quota_gpus, body.cohort, body.borrowing_limit))

    @app.get("/v1/capacity", tags=["capacity"], responses=errors(401))
    def list_capacity(who: Who) -> list[dict[str, Any]]:
        with Session(db) as s:
            rows = s.scalars(select(T.CapacityLoss).where(T.CapacityLoss.repaired_at.is_(None)))
            return [{"id": r.id, "scope": r.scope, "target": r.target, "domain": r.domain, "reason": r.reason,
                     "failed_at": r.failed_at} for r in rows]

    @app.post("/v1/capacity", tags=["capacity"], responses=errors(400, 401, 403, 404, 409, 422, 503))
    async def mark_capacity(body: CapacityIn, who: Admin) -> dict[str, Any]:
        if body.scope == "domain" and body.domain is None:
            raise HTTPException(422, "domain: a domain failure names the domain index")
        return await run(MarkCapacity(who.actor, body.scope, body.target, body.domain, body.failed, body.reason))
