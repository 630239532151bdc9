"""Plans: made on demand by an admin, listed, and read back with the guide the `plan` profile follows."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...store import tables as T
from ..auth import Principal
from ..plans import latest_portfolio_id, make_plan, plan_json
from ..schemas import errors
from . import Ctx


def add(app: FastAPI, ctx: Ctx) -> None:
    control, db, clock, run = ctx.control, ctx.db, ctx.clock, ctx.run
    Admin = Annotated[Principal, Depends(ctx.admin)]

    async def plan_now(actor: str, why: str) -> dict[str, Any]:
        """Solve a plan for the portfolio in force outside the loop, then have the loop install it."""
        portfolio = control.snapshot.portfolio
        if portfolio is None:
            raise HTTPException(409, "no portfolio is loaded yet: nothing to plan")
        with Session(db) as s:
            pid = latest_portfolio_id(s)
        cmd = await run_in_threadpool(make_plan, portfolio, pid or 0, clock(), actor, time.perf_counter, why)
        return await run(cmd)

    app.state.plan_now = plan_now   # the schedule (server.app) makes its plans the same way

    @app.post("/v1/plans", tags=["plans"], status_code=201, responses=errors(401, 403, 409, 503))
    async def make(who: Admin) -> dict[str, Any]:
        """Plan now, from today to the end of the portfolio, and follow the plan from now on (the `plan`
        placement profile reads it; others ignore it)."""
        return await plan_now(who.actor, "asked")

    @app.get("/v1/plans", tags=["plans"], responses=errors(401, 403, 422))
    def list_plans(who: Admin, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
        """Plans made, newest first."""
        with Session(db) as s:
            return [plan_json(r) for r in s.scalars(select(T.StoredPlan).order_by(T.StoredPlan.id.desc())
                                                    .limit(limit))]

    @app.get("/v1/plans/{plan_id}", tags=["plans"], responses=errors(401, 403, 404, 422))
    def get_plan(plan_id: Annotated[int, Field(ge=1, le=2**62)], who: Admin) -> dict[str, Any]:
        """One plan with its guide: per period, the GPUs planned per workload, class and cluster, and each
        cluster's capacity shadow price (USD per GPU-hour)."""
        with Session(db) as s:
            row = s.get(T.StoredPlan, plan_id)
            if row is None:
                raise HTTPException(404, f"no plan {plan_id}")
            return plan_json(row, with_guide=True)
