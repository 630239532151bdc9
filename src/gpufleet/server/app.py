"""The HTTP API: a FastAPI app built by `create_app(settings)`; nothing lives at module level.

Writes go to the control loop as commands and are answered once their transaction commits; reads go
straight to the database. Every route but /health and /metrics needs a bearer token; a team's token
sees and changes only that team's work.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

import asyncio
import gc
import json
import logging
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..backends.base import BackendError, BackendSet, BackendUnavailable
from ..model.base import MAX_GPUS
from ..model.base import Name as ModelName
from ..model.job import JobSpec
from ..store import connect, upgrade
from ..store import tables as T
from .auth import Principal, Tokens, digest
from .control import (
    Cancel,
    Control,
    LoadPortfolio,
    MarkCapacity,
    PutTeam,
    Refused,
    ReserveCharge,
    SettleCharge,
    Submit,
)
from .fastpath import FastSubmit
from .metrics import Metrics
from .spend import read_rows, spend

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


# -- bodies ---------------------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitIn(_Body):
    job: JobSpec
    key: Name | None = Field(None, description="idempotency key: a retry with the same key returns the same job")


class PortfolioIn(_Body):
    scenario: str = Field(min_length=1, max_length=20_000_000, description="the scenario file's YAML text")
    source: str = Field("<api>", max_length=500, pattern=r"^[^\x00]*$",
                        description="where the text came from (file name)")


class TeamIn(_Body):
    quota_gpus: int = Field(ge=0, le=MAX_GPUS)
    cohort: ModelName | None = None
    borrowing_limit: int | None = Field(None, ge=0, le=MAX_GPUS)


class TokenIn(_Body):
    team: ModelName | None = None
    admin: bool = False
    name: Name = "token"


class CapacityIn(_Body):
    scope: Literal["domain", "cluster", "provider"]
    target: Name
    domain: int | None = Field(None, ge=0, le=10_000_000)
    failed: bool = True
    reason: str = Field("", max_length=2000, pattern=r"^[^\x00]*$")


class CapacityBlockIn(_Body):
    offering_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    cluster: Name | None = Field(None, description="the cluster the block is for (default: the backend's only one)")
    max_usd: float | None = Field(None, ge=0, le=1e12, description="refuse an offering dearer than this")


# -- rows to JSON ---------------------------------------------------------------------------------------
def job_json(j: T.Job, placements: list[T.Placement] | None = None) -> dict[str, Any]:
    out = {"id": j.id, "team": j.team, "key": j.key, "name": j.name, "kind": j.kind, "gpus": j.gpus,
           "priority": j.priority, "state": j.state, "reason": j.reason, "submitted_at": j.submitted_at,
           "placed_at": j.placed_at, "started_at": j.started_at, "finished_at": j.finished_at,
           "attempt": j.attempt, "exit_code": j.exit_code, "lost_gpu_hours": round(j.lost_gpu_hours or 0.0, 6),
           "cancel_requested": j.cancel_requested}
    if placements is not None:
        out["spec"] = j.spec
        out["placements"] = [placement_json(p) for p in placements]
    return out


def placement_json(p: T.Placement) -> dict[str, Any]:
    return {"id": p.id, "job_id": p.job_id, "attempt": p.attempt, "request": p.request_id, "cluster": p.cluster,
            "provider": p.provider, "parts": p.parts, "backend": p.backend,
            "cost_per_gpu_hour": p.cost_per_gpu_hour, "placed_at": p.placed_at, "released_at": p.released_at,
            "outcome": p.outcome}


def event_json(e: T.Event) -> dict[str, Any]:
    return {"id": e.id, "at": e.at, "actor": e.actor, "kind": e.kind, "team": e.team, "job_id": e.job_id,
            "message": e.message, "detail": e.detail}


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
            await run_in_threadpool(tokens.ensure_admin, settings.admin_token)
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

    Who = Annotated[Principal, Depends(principal)]

    def admin_only(who: Principal) -> None:
        if not who.admin:
            raise HTTPException(403, "this needs an admin token")

    async def run(cmd) -> Any:
        return await asyncio.wrap_future(control.submit(cmd))

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

    dashboard = (Path(__file__).with_name("dashboard.html")).read_text()

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def home() -> HTMLResponse:
        """The dashboard: a static page that asks for a token and reads the API with it."""
        return HTMLResponse(dashboard)

    @app.get("/v1/whoami", tags=["auth"])
    async def whoami(who: Who) -> dict[str, Any]:
        return {"name": who.name, "team": who.team, "admin": who.admin}

    # -- portfolio ----------------------------------------------------------------------------------------
    @app.get("/v1/portfolio", tags=["portfolio"])
    def get_portfolio(who: Who) -> dict[str, Any]:
        snap = control.snapshot
        p = snap.portfolio
        if p is None:
            raise HTTPException(404, "no portfolio is loaded yet")
        with Session(db) as s:
            version = s.scalar(select(func.max(T.PortfolioVersion.id)))
        return {"name": p.scenario.name, "version": version, "clusters": [dict(c) for c in snap.clusters]}

    @app.put("/v1/portfolio", tags=["portfolio"])
    async def put_portfolio(body: PortfolioIn, who: Who) -> dict[str, Any]:
        admin_only(who)
        return await run(LoadPortfolio(who.actor, body.scenario, body.source))

    # -- teams --------------------------------------------------------------------------------------------
    @app.get("/v1/teams", tags=["teams"])
    def list_teams(who: Who) -> list[dict[str, Any]]:
        with Session(db) as s:
            q = select(T.Team).order_by(T.Team.name)
            if not who.admin:
                q = q.where(T.Team.name == who.team)
            used = control.snapshot.team_used
            return [{"name": t.name, "quota_gpus": t.quota_gpus, "cohort": t.cohort,
                     "borrowing_limit": t.borrowing_limit, "used_gpus": used.get(t.name, 0)} for t in s.scalars(q)]

    @app.put("/v1/teams/{name}", tags=["teams"])
    async def put_team(name: ModelName, body: TeamIn, who: Who) -> dict[str, Any]:
        admin_only(who)
        return await run(PutTeam(who.actor, name, body.quota_gpus, body.cohort, body.borrowing_limit))

    # -- tokens -------------------------------------------------------------------------------------------
    @app.post("/v1/tokens", tags=["auth"], status_code=201)
    def create_token(body: TokenIn, who: Who) -> dict[str, Any]:
        admin_only(who)
        if body.admin == (body.team is not None):
            raise HTTPException(422, "give either `team` (a team token) or `admin: true`, not both or neither")
        if body.team is not None:
            with Session(db) as s:
                if s.get(T.Team, body.team) is None:
                    raise HTTPException(404, f"no team {body.team!r}; create it first (PUT /v1/teams/{body.team})")
        token, tid = tokens.create(body.name, body.team, body.admin)
        with Session(db) as s, s.begin():
            s.add(T.Event(at=clock(), actor=who.actor, kind="token_created", team=body.team, job_id=None,
                          message=f"token {tid} ({body.name}) created for "
                                  f"{'admin' if body.admin else 'team ' + str(body.team)}"))
        return {"id": tid, "token": token, "team": body.team, "admin": body.admin, "name": body.name}

    @app.get("/v1/tokens", tags=["auth"])
    def list_tokens(who: Who) -> list[dict[str, Any]]:
        admin_only(who)
        with Session(db) as s:
            return [{"id": t.id, "name": t.name, "team": t.team, "admin": t.admin, "created_at": t.created_at,
                     "revoked_at": t.revoked_at} for t in s.scalars(select(T.Token).order_by(T.Token.id))]

    @app.delete("/v1/tokens/{token_id}", tags=["auth"])
    def revoke_token(token_id: Annotated[int, Field(ge=1, le=2**62)], who: Who) -> dict[str, Any]:
        admin_only(who)
        if not tokens.revoke(token_id):
            raise HTTPException(404, f"no live token {token_id}")
        with Session(db) as s, s.begin():
            s.add(T.Event(at=clock(), actor=who.actor, kind="token_revoked", team=None, job_id=None,
                          message=f"token {token_id} revoked"))
        return {"id": token_id, "revoked": True}

    # -- jobs ---------------------------------------------------------------------------------------------
    def prepare_submit(who: Principal, body: SubmitIn, idempotency_key: str | None, arrived: float) -> Submit:
        """Check a submission; the command for the control loop, or an HTTPException saying what is wrong."""
        job = body.job
        key = body.key or idempotency_key
        if body.key and idempotency_key and body.key != idempotency_key:
            raise HTTPException(422, "the Idempotency-Key header and the body's `key` differ")
        if not who.admin:
            if "team" in job.model_fields_set and job.team != who.team:
                raise HTTPException(403, f"a token of team {who.team!r} cannot submit work for team {job.team!r}")
            if job.team != who.team:
                job = job.model_copy(update={"team": who.team})
        if not (job.command or "").strip():
            raise HTTPException(422, "job.command: the live control plane runs a command; give `command`")
        if "\x00" in (job.command or "") or any("\x00" in v for v in job.env.values()):
            raise HTTPException(422, "job: NUL characters are not allowed in command or env")
        return Submit(who.actor, job.team, job, key, arrived)

    async def submitted(cmd: Submit) -> tuple[int, bytes]:
        out = await run(cmd)
        return (201 if out["created"] else 200), json.dumps({**out, "key": cmd.key}).encode()

    @app.post("/v1/jobs", tags=["jobs"], status_code=201)
    async def submit(body: SubmitIn, who: Who,
                     idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200,
                                                                   pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$")] = None
                     ) -> Response:
        status, payload = await submitted(prepare_submit(who, body, idempotency_key, clock()))
        return Response(payload, status_code=status, media_type="application/json")

    app.state.fast_submit = FastSubmit(tokens, SubmitIn, prepare_submit, submitted, clock)

    def _jobs_query(who: Principal, team: str | None):
        q = select(T.Job)
        if not who.admin:
            if team is not None and team != who.team:
                raise HTTPException(403, f"a token of team {who.team!r} sees only its own jobs")
            q = q.where(T.Job.team == who.team)
        elif team is not None:
            q = q.where(T.Job.team == team)
        return q

    @app.get("/v1/jobs", tags=["jobs"])
    def list_jobs(who: Who, state: Annotated[str | None, Query(max_length=20, pattern=r"^[a-z]+$")] = None,
                  team: Annotated[ModelName | None, Query()] = None,
                  after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                  limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
                  newest: Annotated[bool, Query(description="newest first")] = False) -> list[dict[str, Any]]:
        q = _jobs_query(who, team).where(T.Job.id > after)
        if state:
            q = q.where(T.Job.state == state)
        order = T.Job.id.desc() if newest else T.Job.id
        with Session(db) as s:
            return [job_json(j) for j in s.scalars(q.order_by(order).limit(limit))]

    def _own_job(s: Session, who: Principal, job_id: int) -> T.Job:
        j = s.get(T.Job, job_id)
        if j is None or (not who.admin and j.team != who.team):
            raise HTTPException(404, f"no job {job_id}")  # another team's job is not shown to exist
        return j

    JobId = Annotated[int, Field(ge=1, le=2**62)]

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    def get_job(job_id: JobId, who: Who) -> dict[str, Any]:
        with Session(db) as s:
            j = _own_job(s, who, job_id)
            pl = list(s.scalars(select(T.Placement).where(T.Placement.job_id == j.id).order_by(T.Placement.id)))
            return job_json(j, pl)

    @app.post("/v1/jobs/{job_id}/cancel", tags=["jobs"])
    async def cancel(job_id: JobId, who: Who) -> dict[str, Any]:
        return await run(Cancel(who.actor, job_id, None if who.admin else who.team))

    @app.get("/v1/jobs/{job_id}/logs", tags=["jobs"], response_class=PlainTextResponse)
    def logs(job_id: JobId, who: Who, tail: Annotated[int | None, Query(ge=1, le=1_000_000)] = None) -> str:
        with Session(db) as s:
            j = _own_job(s, who, job_id)
            pl = s.scalars(select(T.Placement).where(T.Placement.job_id == j.id, T.Placement.handle.is_not(None))
                           .order_by(T.Placement.id.desc())).first()
            if pl is None:
                return ""
            backend_name, handle = pl.backend, pl.handle
        try:
            return backends.for_cluster(backend_name).logs(handle, tail)
        except BackendError as e:
            raise HTTPException(502, f"backend {backend_name} could not return the logs: {e}") from e

    # -- placements, events, capacity ---------------------------------------------------------------------
    @app.get("/v1/placements", tags=["placements"])
    def list_placements(who: Who, active: bool = True,
                        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> list[dict[str, Any]]:
        q = select(T.Placement)
        if active:
            q = q.where(T.Placement.released_at.is_(None))
        if not who.admin:
            q = q.join(T.Job, T.Job.id == T.Placement.job_id).where(T.Job.team == who.team)
        with Session(db) as s:
            return [placement_json(p) for p in s.scalars(q.order_by(T.Placement.id).limit(limit))]

    @app.get("/v1/events", tags=["events"])
    def list_events(who: Who, job: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
                    newest: Annotated[bool, Query(description="newest first")] = False) -> list[dict[str, Any]]:
        q = select(T.Event).where(T.Event.id > after)
        if not who.admin:
            q = q.where(T.Event.team == who.team)
        if job is not None:
            q = q.where(T.Event.job_id == job)
        with Session(db) as s:
            order = T.Event.id.desc() if newest else T.Event.id
            return [event_json(e) for e in s.scalars(q.order_by(order).limit(limit))]

    @app.get("/v1/capacity", tags=["capacity"])
    def list_capacity(who: Who) -> list[dict[str, Any]]:
        with Session(db) as s:
            rows = s.scalars(select(T.CapacityLoss).where(T.CapacityLoss.repaired_at.is_(None)))
            return [{"id": r.id, "scope": r.scope, "target": r.target, "domain": r.domain, "reason": r.reason,
                     "failed_at": r.failed_at} for r in rows]

    @app.post("/v1/capacity", tags=["capacity"])
    async def mark_capacity(body: CapacityIn, who: Who) -> dict[str, Any]:
        admin_only(who)
        if body.scope == "domain" and body.domain is None:
            raise HTTPException(422, "domain: a domain failure names the domain index")
        return await run(MarkCapacity(who.actor, body.scope, body.target, body.domain, body.failed, body.reason))

    # -- money --------------------------------------------------------------------------------------------
    @app.get("/v1/spend", tags=["spend"])
    def get_spend(who: Who, since: Annotated[datetime | None, Query(description="default: the first portfolio")] = None,
                  until: Annotated[datetime | None, Query(description="default (and at most): now")] = None
                  ) -> dict[str, Any]:
        """What the fleet has cost: usage priced under the contracts plus fees, per provider and contract."""
        admin_only(who)
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
            usage, fees = read_rows(s, t0, t1)
            unsettled = [{"charge": c.id, "at": c.at, "status": c.status, "provider": c.provider, "cluster": c.cluster,
                          "usd": c.usd, "offering_id": c.offering_id, "ref": c.ref}
                         for c in s.scalars(select(T.Charge).where(T.Charge.status.in_(("pending", "unknown"))))]
        bill = spend(portfolio, usage, fees, t0, t1)
        bill["unsettled"] = unsettled
        return bill

    @app.get("/v1/backends/{name}/capacity-blocks", tags=["spend"])
    async def find_capacity_blocks(name: Name, who: Who,
                                   instance_type: Annotated[str | None, Query(
                                       min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$",
                                       description="required: e.g. p5.48xlarge, u-p6e-gb200x72")] = None,
                                   count: Annotated[int, Query(ge=1, le=10_000)] = 1,
                                   hours: Annotated[int, Query(ge=1, le=24 * 366)] = 24) -> dict[str, Any]:
        """Capacity Block offerings the backend can buy, cheapest first (asked outside the control loop)."""
        admin_only(who)
        b = control.seller(name)
        if not instance_type:
            raise HTTPException(422, "instance_type: name the instance type to find capacity blocks for")
        try:
            offers = await run_in_threadpool(b.find_capacity_blocks, instance_type, count, hours)
        except BackendUnavailable as e:
            raise HTTPException(503, str(e)) from e
        except BackendError as e:
            raise HTTPException(502, str(e)) from e
        return {"backend": name, "offerings": [b.describe_offering(o) for o in offers]}

    @app.post("/v1/backends/{name}/capacity-blocks", tags=["spend"], status_code=201)
    async def buy_capacity_block(name: Name, body: CapacityBlockIn, who: Who) -> dict[str, Any]:
        """Buy an offering found above for one of the backend's clusters. A pending charge is committed first
        (one per offering), the purchase is made outside the control loop, then the charge is settled."""
        admin_only(who)
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

    return app


def _utc(t: datetime) -> datetime:
    """A time without a zone is UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def settings_from_env(**kw: Any) -> Settings:
    from platformdirs import user_data_dir

    from ..store.db import default_url
    data_dir = kw.pop("data_dir", None) or os.environ.get("GPUFLEET_DATA_DIR") or user_data_dir("gpufleet")
    db_url = kw.pop("db_url", None) or os.environ.get("GPUFLEET_DB") or default_url()
    return Settings(db_url=db_url, data_dir=data_dir, admin_token=os.environ.get("GPUFLEET_ADMIN_TOKEN"), **kw)
