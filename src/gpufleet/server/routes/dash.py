"""What the dashboard reads beyond the rest of the API: the fleet over time, NVLink domains and provider
shares now, plan and simulation pages; and its own static files (plotly.js and the page's script)."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...store import tables as T
from .. import history
from ..auth import Principal
from ..schemas import errors
from . import Ctx

STATIC = Path(__file__).parent.parent / "static"
_RANGE = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}
Id = Annotated[int, Field(ge=1, le=2**62)]


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    title: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")
    doc: dict[str, Any] = Field(description="a `gpufleet simulate --json` document: one run, or {\"runs\": [...]}")


@lru_cache(maxsize=1)
def _plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]
    return get_plotlyjs().encode()


def _results(doc: dict[str, Any]) -> list[dict[str, Any]]:
    runs = doc.get("runs", [doc])
    return runs if isinstance(runs, list) else [doc]


def _caps(portfolio: Any) -> list[dict[str, Any]]:
    return [{"class": lim.workload_class, "provider": lim.provider, "max_share": lim.max_share}
            for lim in portfolio.policies.concentration_limits] if portfolio is not None else []


def add(app: FastAPI, ctx: Ctx) -> None:
    control, db, clock = ctx.control, ctx.db, ctx.clock
    Who = Annotated[Principal, Depends(ctx.principal)]
    Admin = Annotated[Principal, Depends(ctx.admin)]

    # -- static files: public libraries and the page's own script (no data, no token) --------------------
    @app.get("/static/plotly.js", include_in_schema=False)
    def plotly_js() -> Response:
        return Response(_plotly_js(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        path = STATIC / name
        if not re.fullmatch(r"[a-z]+\.(js|css)", name) or not path.is_file():
            raise HTTPException(404, f"no static file {name}")
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return Response(path.read_bytes(), media_type=kind, headers={"Cache-Control": "no-cache"})

    # -- the fleet over time and now ---------------------------------------------------------------------
    @app.get("/v1/history", tags=["dashboard"], responses=errors(401, 422))
    def get_history(who: Who,
                    range_: Annotated[str, Query(alias="range", pattern=_RANGE.pattern,
                                                 description="how far back from now: 30m, 6h, 7d ...")] = "6h",
                    points: Annotated[int, Query(ge=2, le=2000)] = 240) -> dict[str, Any]:
        """Each cluster's live, used and failed GPUs, each team's GPUs in use and queued and running jobs, and
        each spend commitment's dollars drawn, at `points` evenly spaced times ending now (the value in force
        at each; null before a series' first sample), from the first sample on when the server is younger than
        the range. A team token sees its own team's series only."""
        m = _RANGE.match(range_)
        assert m is not None
        now = clock()
        with Session(db) as s:
            first = s.scalar(select(func.min(T.Sample.at)))   # a server younger than the range: from its start
            since = max(now - int(m.group(1)) * _UNIT_S[m.group(2)], min(first, now) if first is not None else 0.0)
            return history.read(s, history.Window(since, now, points), None if who.admin else {who.team or ""})

    @app.get("/v1/fleet", tags=["dashboard"], responses=errors(401))
    def get_fleet(who: Who) -> dict[str, Any]:
        """Now: the clusters, the NVLink-domain occupancy of the largest, and (admin) each workload class's
        GPUs per provider against the concentration caps."""
        snap = control.snapshot
        p = snap.portfolio
        shares = {k: dict(v) for k, v in snap.shares.items()} if who.admin else None
        return {"portfolio": p.scenario.name if p else None, "clusters": [dict(c) for c in snap.clusters],
                "domains": [dict(d) for d in snap.domains], "shares": shares, "caps": _caps(p),
                "gauges": dict(snap.gauges) if who.admin else None}

    # -- plans and simulation reports as pages ------------------------------------------------------------
    @app.get("/v1/plans/{plan_id}/report", tags=["plans"], response_class=HTMLResponse,
             responses=errors(401, 403, 404, 422))
    async def plan_page(plan_id: Id, who: Admin) -> HTMLResponse:
        """The plan's page: the charts and tables of `gpufleet plan --report`."""
        with Session(db) as s:
            row = s.get(T.StoredPlan, plan_id)
            if row is None:
                raise HTTPException(404, f"no plan {plan_id}")
            doc = row.doc
        if doc is None:
            raise HTTPException(404, f"plan {plan_id} was made before plans kept their document")
        from ...report.plan_html import plan_report
        return HTMLResponse(await run_in_threadpool(plan_report, doc, f"plan {plan_id}: {doc['scenario']}"))

    @app.post("/v1/reports", tags=["reports"], status_code=201, responses=errors(400, 401, 422))
    async def upload_report(body: ReportIn, who: Who) -> dict[str, Any]:
        """Keep a simulation result for the dashboard: a team token's for its team, an admin's for admins."""
        try:
            await run_in_threadpool(_render, body.doc, body.title, control.snapshot.portfolio)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise HTTPException(422, f"doc: not a `gpufleet simulate --json` document ({type(e).__name__}: {e})")
        with Session(db) as s, s.begin():
            row = T.Report(at=clock(), team=None if who.admin else who.team, actor=who.actor, title=body.title,
                           doc=body.doc)
            s.add(row)
            s.flush()
            return _report_json(row)

    @app.get("/v1/reports", tags=["reports"], responses=errors(401, 422))
    def list_reports(who: Who, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
        """Uploaded simulation results, newest first (a team token: its own team's)."""
        q = select(T.Report).order_by(T.Report.id.desc()).limit(limit)
        if not who.admin:
            q = q.where(T.Report.team == who.team)
        with Session(db) as s:
            return [_report_json(r) for r in s.scalars(q)]

    @app.get("/v1/reports/{report_id}/report", tags=["reports"], response_class=HTMLResponse,
             responses=errors(401, 404, 422))
    async def report_page(report_id: Id, who: Who) -> HTMLResponse:
        """The simulation's page: the charts of `gpufleet simulate --report`."""
        with Session(db) as s:
            row = s.get(T.Report, report_id)
            if row is None or not (who.admin or row.team == who.team):  # another team's: not shown to exist
                raise HTTPException(404, f"no report {report_id}")
            doc, title = row.doc, row.title
        return HTMLResponse(await run_in_threadpool(_render, doc, title, control.snapshot.portfolio))


def _render(doc: dict[str, Any], title: str, portfolio: Any) -> str:
    from ...report.html import commitment_terms, simulation_report
    terms = commitment_terms(portfolio) if portfolio is not None else {}
    results = _results(doc)
    if not results or not all(isinstance(r, dict) and math.isfinite(float(r["cost_usd"])) for r in results):
        raise ValueError("every run needs a cost_usd")
    return simulation_report(results, title, None, terms)


def _report_json(r: T.Report) -> dict[str, Any]:
    runs = _results(r.doc)
    return {"id": r.id, "at": r.at, "team": r.team, "actor": r.actor, "title": r.title, "runs": len(runs),
            "scenario": runs[0].get("scenario") if runs and isinstance(runs[0], dict) else None}
