"""Health, metrics and the dashboard page (health and metrics need no token)."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from ..auth import Principal
from ..schemas import errors
from . import Ctx


def add(app: FastAPI, ctx: Ctx) -> None:
    control, metrics = ctx.control, ctx.metrics
    Who = Annotated[Principal, Depends(ctx.principal)]

    # -- health and metrics (no token) --------------------------------------------------------------------
    @app.get("/health", tags=["ops"])
    def health() -> dict[str, Any]:
        p = control.snapshot.portfolio
        return {"status": "ok" if control.ready.is_set() else "starting",
                "portfolio": p.scenario.name if p else None, **control.gauges()}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        g = control.gauges()
        metrics.queued.set(g["queued"])
        metrics.active.set(g["active_placements"])
        metrics.free.set(g["gpus_free"])
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    dashboard = (Path(__file__).parent.parent / "dashboard.html").read_text()

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def home() -> HTMLResponse:
        """The dashboard: a static page that asks for a token and reads the API with it."""
        return HTMLResponse(dashboard)

    @app.get("/v1/whoami", tags=["auth"], responses=errors(401))
    async def whoami(who: Who) -> dict[str, Any]:
        return {"name": who.name, "team": who.team, "admin": who.admin}
