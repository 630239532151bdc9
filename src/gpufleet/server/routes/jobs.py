"""Jobs (submit, list, show, cancel, logs), placements and events; a team sees only its own."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

import json
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import PlainTextResponse, Response
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...backends.base import BackendError
from ...model.base import Name as ModelName
from ...store import tables as T
from ..auth import Principal
from ..commands import Cancel, Submit
from ..dryrun import DryRun
from ..fastpath import FastSubmit
from ..schemas import SubmitIn, errors, event_json, job_json, placement_json
from . import Ctx

JobState = Literal["queued", "placed", "running", "succeeded", "failed", "cancelled"]
ACTIVE_STATES = ("queued", "placed", "running")


def add(app: FastAPI, ctx: Ctx) -> None:
    db, tokens, clock, backends, run = ctx.db, ctx.tokens, ctx.clock, ctx.backends, ctx.run
    Who = Annotated[Principal, Depends(ctx.principal)]

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
        return Submit(who.actor, job.team, job, key, arrived)

    async def submitted(cmd: Submit) -> tuple[int, bytes]:
        out = await run(cmd)
        return (201 if out["created"] else 200), json.dumps({**out, "key": cmd.key}).encode()

    @app.post("/v1/jobs", tags=["jobs"], status_code=201,
              description="Submit a job. 422 also when the job is well formed but no cluster of the portfolio "
                          "could ever take it (its GPU type, place, NVLink domain or fabric, or a team without "
                          "quota): the error gives the placement explanation and nothing is stored.",
              responses={200: {"description": "already submitted with this key: the same job"},
                         **errors(400, 401, 403, 422, 503)})
    async def submit(body: SubmitIn, who: Who,
                     idempotency_key: Annotated[str, Header(  # a header is a string or absent, never null
                         min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$",
                         description="idempotency key, as the body's `key` (both: they must be equal)")] = None  # type: ignore[assignment]
                     ) -> Response:
        status, payload = await submitted(prepare_submit(who, body, idempotency_key, clock()))
        return Response(payload, status_code=status, media_type="application/json")

    @app.post("/v1/dry-run", tags=["jobs"],
              description="The decision the scheduler would make on this job now, and nothing stored (as "
                          "`sbatch --test-only`): `would_place`, each placement, the jobs a preemption would "
                          "take, how many waiting jobs its queue tries first, and else the `reason` with every "
                          "candidate cluster's verdict in `explanation`.",
              responses=errors(400, 401, 403, 409, 422, 503))
    async def dry_run(body: SubmitIn, who: Who) -> dict[str, Any]:
        cmd = prepare_submit(who, body, None, clock())
        return await run(DryRun(who.actor, cmd.team, cmd.spec, who.admin))

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

    @app.get("/v1/jobs", tags=["jobs"], responses=errors(401, 403, 422))
    def list_jobs(who: Who, state: Annotated[JobState | None, Query()] = None,
                  team: Annotated[ModelName | None, Query()] = None,
                  after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                  limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
                  newest: Annotated[bool, Query(description="newest first")] = False,
                  active: Annotated[bool, Query(description="only queued, placed and running jobs")] = False,
                  ) -> list[dict[str, Any]]:
        q = _jobs_query(who, team).where(T.Job.id > after)
        if state:
            q = q.where(T.Job.state == state)
        if active:
            q = q.where(T.Job.state.in_(ACTIVE_STATES))
        order = T.Job.id.desc() if newest else T.Job.id
        with Session(db) as s:
            rows = list(s.scalars(q.order_by(order).limit(limit)))
            where = _clusters_now(s, [j.id for j in rows])
            return [{**job_json(j), "clusters": where.get(j.id, [])} for j in rows]

    def _clusters_now(s: Session, ids: list[int]) -> dict[int, list[str]]:
        """The clusters each job holds GPUs on now (its unreleased placements)."""
        out: dict[int, set[str]] = {}
        for i in range(0, len(ids), 500):
            for jid, cluster in s.execute(select(T.Placement.job_id, T.Placement.cluster).where(
                    T.Placement.job_id.in_(ids[i:i + 500]), T.Placement.released_at.is_(None))):
                out.setdefault(jid, set()).add(cluster)
        return {jid: sorted(c) for jid, c in out.items()}

    def _own_job(s: Session, who: Principal, job_id: int) -> T.Job:
        j = s.get(T.Job, job_id)
        if j is None or (not who.admin and j.team != who.team):
            raise HTTPException(404, f"no job {job_id}")  # another team's job is not shown to exist
        return j

    JobId = Annotated[int, Field(ge=1, le=2**62)]

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], responses=errors(401, 404, 422))
    def get_job(job_id: JobId, who: Who) -> dict[str, Any]:
        with Session(db) as s:
            j = _own_job(s, who, job_id)
            pl = list(s.scalars(select(T.Placement).where(T.Placement.job_id == j.id).order_by(T.Placement.id)))
            return job_json(j, pl)

    @app.post("/v1/jobs/{job_id}/cancel", tags=["jobs"], responses=errors(401, 404, 422, 503))
    async def cancel(job_id: JobId, who: Who) -> dict[str, Any]:
        return await run(Cancel(who.actor, job_id, None if who.admin else who.team))

    @app.get("/v1/jobs/{job_id}/logs", tags=["jobs"], response_class=PlainTextResponse,
             responses=errors(401, 404, 422, 502))
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
    @app.get("/v1/placements", tags=["placements"], responses=errors(401, 422))
    def list_placements(who: Who, active: bool = True,
                        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> list[dict[str, Any]]:
        q = select(T.Placement)
        if active:
            q = q.where(T.Placement.released_at.is_(None))
        if not who.admin:
            q = q.join(T.Job, T.Job.id == T.Placement.job_id).where(T.Job.team == who.team)
        with Session(db) as s:
            return [placement_json(p) for p in s.scalars(q.order_by(T.Placement.id).limit(limit))]

    @app.get("/v1/events", tags=["events"], responses=errors(401, 422))
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
