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

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ..backends.base import BackendSet
from ..store import connect, upgrade
from .auth import Principal, Tokens, digest
from .control import (
    Control,
    Refused,
)
from .metrics import Metrics
from .routes import Ctx, dash, fleet, jobs, money, ops, status
from .routes import plans as plans_routes
from .routes import tokens as tokens_routes

log = logging.getLogger("gpufleet.server")

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
    replan_every_s: float | None = None  # make a plan on this schedule (the `plan` profile follows it)


async def _replanning(app: FastAPI, every_s: float) -> None:
    """Plan every `every_s` seconds (the first one right away); a failed plan is logged and tried next time."""
    while True:
        if app.state.control.snapshot.portfolio is not None:
            try:
                await app.state.plan_now("scheduler", f"every {every_s:g} s")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a refusal (portfolio changed meanwhile) or a solver failure
                log.warning("scheduled plan not made: %s", getattr(e, "detail", e))
        await asyncio.sleep(every_s)


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
        schedule = asyncio.create_task(_replanning(app, settings.replan_every_s)) if settings.replan_every_s else None
        try:
            yield
        finally:
            if schedule is not None:
                schedule.cancel()
            await run_in_threadpool(control.stop)
            db.dispose()

    app = FastAPI(title="gpufleet", version="0.1.0", lifespan=lifespan,
                  description="The gpufleet control plane: portfolio, teams and tokens, jobs, placements, events.")
    app.state.control, app.state.tokens, app.state.metrics, app.state.db = control, tokens, metrics, db

    # -- auth ---------------------------------------------------------------------------------------------
    bearer = HTTPBearer(auto_error=False, description="a token from POST /v1/tokens, or GPUFLEET_ADMIN_TOKEN")

    async def principal(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
        if cred is None:
            raise HTTPException(401, "missing bearer token (set GPUFLEET_TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})
        token = cred.credentials
        p = tokens._cache.get(digest(token))  # hot path: no thread hop for a known token
        if p is None:
            p = await run_in_threadpool(tokens.lookup, token)
        if p is None:
            raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        return p

    async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
        """An admin route's dependency: FastAPI runs it before it validates parameters and body, so a team
        token is refused (403) before anything about its request is judged."""
        if not who.admin:
            raise HTTPException(403, "this needs an admin token")
        return who

    def needs(dependant: Any, call: Callable) -> bool:
        return any(d.call is call or needs(d, call) for d in dependant.dependencies)

    async def refused_first(request: Request) -> JSONResponse | None:
        """A body that is not JSON (or not UTF-8) is refused before FastAPI runs the route's dependencies:
        answer the 401 or 403 the route would have given first, if any."""
        route = request.scope.get("route")
        dependant = getattr(route, "dependant", None)
        if dependant is None or not needs(dependant, principal):
            return None
        try:
            who = await principal(await bearer(request))
            if needs(dependant, admin):
                await admin(who)
        except HTTPException as e:
            return JSONResponse({"error": e.detail}, status_code=e.status_code, headers=e.headers)
        return None

    def allowed(request: Request) -> str:
        """Every method some route serves at this path (Starlette's 405 names only one route's)."""
        methods: set[str] = set()
        for r in app.router.routes:
            if r.matches(request.scope)[0] != Match.NONE:
                methods |= getattr(r, "methods", None) or set()
        order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        return ", ".join(sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m)))

    # -- errors: always {"error": message}, never a traceback --------------------------------------------
    @app.exception_handler(StarletteHTTPException)  # also FastAPI's subclass: routing, 404, 405, bad bodies
    async def _http(request: Request, e: StarletteHTTPException):
        if e.status_code in (400, 413) and (first := await refused_first(request)) is not None:
            return first
        headers = dict(e.headers or {})
        if e.status_code == 405:
            headers["Allow"] = allowed(request)
        return JSONResponse({"error": e.detail}, status_code=e.status_code, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        if (first := await refused_first(request)) is not None:
            return first
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

    async def run(cmd) -> Any:
        return await asyncio.wrap_future(control.submit(cmd))

    ctx = Ctx(control=control, db=db, tokens=tokens, clock=clock, metrics=metrics, backends=backends,
              principal=principal, admin=admin, run=run)
    for add in (ops.add, fleet.add, tokens_routes.add, jobs.add, money.add, plans_routes.add, dash.add,
                status.add):
        add(app, ctx)

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, with every error answer as JSON: FastAPI files an operation's documented errors
        under its success media type (text/plain for the logs), but errors are always `{"error": ...}`."""
        if app.openapi_schema is None:
            spec = FastAPI.openapi(app)
            for operations in spec["paths"].values():
                for op in operations.values():
                    for code, answer in op.get("responses", {}).items():
                        if code[:1] in "45" and answer.get("content"):
                            answer["content"] = {"application/json": next(iter(answer["content"].values()))}
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def settings_from_env(**kw: Any) -> Settings:
    from platformdirs import user_data_dir

    from ..store.db import default_url
    data_dir = kw.pop("data_dir", None) or os.environ.get("GPUFLEET_DATA_DIR") or user_data_dir("gpufleet")
    db_url = kw.pop("db_url", None) or os.environ.get("GPUFLEET_DB") or default_url()
    return Settings(db_url=db_url, data_dir=data_dir, admin_token=os.environ.get("GPUFLEET_ADMIN_TOKEN"), **kw)
