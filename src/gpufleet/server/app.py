"""The HTTP API: a FastAPI app built by `create_app(settings)`; nothing lives at module level.

Writes go to the control loop as commands and are answered once their transaction commits; reads go
straight to the database. Every route but /health and /metrics needs a bearer token; a team's token
sees and changes only that team's work.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

import asyncio
import gc
import logging
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..backends.base import BackendSet
from ..store import connect, upgrade
from .auth import Principal, Tokens, digest
from .control import (
    Control,
    Refused,
)
from .metrics import Metrics
from .routes import Ctx, fleet, jobs, money, ops
from .routes import tokens as tokens_routes

log = logging.getLogger("gpufleet.server")

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$")]


@dataclass
class Settings:
    db_url: str
    data_dir: str
    backend: str = "local"
    scenario: str | None = None          # scenario file loaded at start (when it differs from the stored one)
    admin_token: str | None = None       # GPUFLEET_ADMIN_TOKEN: stored hashed at start
    poll_s: float = 1.0
    profile: str | None = None
    backends: BackendSet | None = None   # injected (tests); default: built from `backend`
    clock: Callable[[], float] | None = None
    tune_gc: bool = False                # a server process of its own: freeze start-up objects, rarer GC passes


def default_backends(name: str, data_dir: str) -> BackendSet:
    from ..backends.registry import make_backend
    return BackendSet(default=name, backends={name: make_backend(name, data_dir)})


def create_app(settings: Settings) -> FastAPI:
    import time
    clock = settings.clock or time.time
    db = connect(settings.db_url)
    metrics = Metrics()
    tokens = Tokens(db, clock)
    backends = settings.backends or default_backends(settings.backend, settings.data_dir)
    control = Control(db, backends, settings.data_dir, clock=clock, poll_s=settings.poll_s,
                      profile=settings.profile, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(upgrade, settings.db_url)
        if settings.admin_token:
            if await run_in_threadpool(tokens.ensure_admin, settings.admin_token) == "revoked":
                log.warning("GPUFLEET_ADMIN_TOKEN names a revoked token and other admin tokens are live: "
                            "it stays revoked")
        text = Path(settings.scenario).read_text() if settings.scenario else None
        await run_in_threadpool(control.start, text, settings.scenario or "<scenario>")
        if settings.tune_gc:
            # The portfolio and engine are large and live for good: keep them out of every collection, and
            # collect less often, so collector pauses do not land on submissions.
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
        try:
            yield
        finally:
            await run_in_threadpool(control.stop)
            db.dispose()

    app = FastAPI(title="gpufleet", version="0.1.0", lifespan=lifespan,
                  description="The gpufleet control plane: portfolio, teams and tokens, jobs, placements, events.")
    app.state.control, app.state.tokens, app.state.metrics, app.state.db = control, tokens, metrics, db

    # -- errors: always {"error": message}, never a traceback --------------------------------------------
    @app.exception_handler(StarletteHTTPException)  # also FastAPI's subclass: routing, 404, 405, bad bodies
    async def _http(_: Request, e: StarletteHTTPException):
        return JSONResponse({"error": e.detail}, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError):
        problems = []
        for err in e.errors():
            if err.get("type") == "json_invalid":
                problems.append({"field": "body", "message": f"not valid JSON ({err.get('ctx', {}).get('error', '')})"})
                continue
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            problems.append({"field": where, "message": err.get("msg", "invalid")})
        msg = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:10])
        return JSONResponse({"error": f"invalid request: {msg}", "problems": problems}, status_code=422)

    @app.exception_handler(Refused)
    async def _refused(_: Request, e: Refused):
        return JSONResponse({"error": str(e)}, status_code=e.status)

    # -- auth ---------------------------------------------------------------------------------------------
    async def principal(authorization: Annotated[str | None, Header()] = None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "missing bearer token (set GPUFLEET_TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})
        token = authorization[7:].strip()
        p = tokens._cache.get(digest(token))  # hot path: no thread hop for a known token
        if p is None:
            p = await run_in_threadpool(tokens.lookup, token)
        if p is None:
            raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        return p

    def admin_only(who: Principal) -> None:
        if not who.admin:
            raise HTTPException(403, "this needs an admin token")

    async def run(cmd) -> Any:
        return await asyncio.wrap_future(control.submit(cmd))

    ctx = Ctx(control=control, db=db, tokens=tokens, clock=clock, metrics=metrics, backends=backends,
              principal=principal, admin_only=admin_only, run=run)
    for add in (ops.add, fleet.add, tokens_routes.add, jobs.add, money.add):
        add(app, ctx)

    return app


def settings_from_env(**kw: Any) -> Settings:
    from platformdirs import user_data_dir

    from ..store.db import default_url
    data_dir = kw.pop("data_dir", None) or os.environ.get("GPUFLEET_DATA_DIR") or user_data_dir("gpufleet")
    db_url = kw.pop("db_url", None) or os.environ.get("GPUFLEET_DB") or default_url()
    return Settings(db_url=db_url, data_dir=data_dir, admin_token=os.environ.get("GPUFLEET_ADMIN_TOKEN"), **kw)
