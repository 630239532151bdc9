"""The API's request bodies and how rows read as JSON."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..model.base import MAX_GPUS
from ..model.base import Name as ModelName
from ..model.job import JobSpec
from ..store import tables as T

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$")]


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
