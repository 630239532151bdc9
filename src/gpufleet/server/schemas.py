"""The API's request bodies, its error answers and how rows read as JSON.

Bodies are strict: a JSON value of the wrong type is refused, never coerced (`false` is not 0, "5" is
not 5), strings are taken as sent (no trimming), and the schema states each rule the server checks.
Rules JSON Schema cannot state (a `tp` that divides the GPU count, a scenario that parses) are in the
field's description and answered 422.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from ..model.base import MAX_GPUS
from ..model.base import Name as ModelName
from ..model.job import JobSpec
from ..store import tables as T

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$")]

# A command of only ASCII whitespace (and the separators \x1c-\x1f) is blank; no NUL anywhere.
_BLANK = r"\t\n\x0b\x0c\r\x1c-\x20"
COMMAND_PATTERN = rf"^[{_BLANK}]*[^\x00{_BLANK}][^\x00]*$"
_COMMAND = re.compile(COMMAND_PATTERN)
_DIGITS = len(str(MAX_GPUS)) - 1
assert MAX_GPUS == 10 ** _DIGITS, "GPU counts 1..MAX_GPUS are spelled by the pattern below"
GPUS_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._/-]{{0,79}}[ \t]*:[ \t]*0*([1-9][0-9]{{0,{_DIGITS - 1}}}|10{{{_DIGITS}}})$"
_GPUS = re.compile(GPUS_PATTERN)
NoNul = Annotated[str, Field(pattern=r"^[^\x00]*$")]


# -- errors ---------------------------------------------------------------------------------------------
class Problem(BaseModel):
    field: str = Field(description="where: `job.gpus`, `body`, a query or path parameter")
    message: str


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer."""

    error: str = Field(description="what was wrong, for a person to read")
    problems: list[Problem] | None = Field(None, description="on a 422 from validation: each field refused")


_WHY = {
    400: "the body could not be read (not UTF-8, or not the media type it says it is)",
    401: "no bearer token, or one that is unknown or revoked",
    403: "the token may not do this (an admin route, or another team's work)",
    404: "no such thing (or another team's, which is not shown to exist)",
    409: "conflicts with the server's state (no portfolio loaded yet, already done, the last admin token)",
    422: "a parameter or body field is invalid: `problems` names each one",
    502: "the backend refused or failed",
    503: "the server or backend could not answer now; try again",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an operation documents (for `responses=`), each with the `{"error": ...}` body."""
    return {c: {"model": ErrorOut, "description": _WHY[c]} for c in codes}


# -- query values ---------------------------------------------------------------------------------------
def _not_a_number(v: Any) -> Any:
    if isinstance(v, str):
        try:
            float(v)
        except ValueError:
            return v
        raise ValueError("expected a date-time such as 2026-01-01T00:00:00Z, not a number")
    return v


When = Annotated[datetime, BeforeValidator(_not_a_number)]  # a date-time, never a Unix timestamp


# -- bodies ---------------------------------------------------------------------------------------------
def _whole(v: Any) -> Any:
    """JSON has one kind of number: 8.0 is the integer 8 (JSON Schema says so too); others stay floats."""
    if type(v) is float:
        return int(v) if v.is_integer() else v
    if type(v) is dict:
        return {k: _whole(x) for k, x in v.items()}
    if type(v) is list:
        return [_whole(x) for x in v]
    return v


class _Body(BaseModel):
    """Strict (no `false` for 0, no "5" for 5), but a whole number is an integer however it is written."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        return _whole(data)


def _job_schema(schema: dict[str, Any]) -> None:
    props = schema["properties"]
    props["gpus"] = {
        "anyOf": [{"type": "string", "pattern": GPUS_PATTERN}, {"type": "integer", "minimum": 1, "maximum": MAX_GPUS}],
        "description": props["gpus"].get("description", "")}
    for name in ("any_of", "replicas", "env"):  # a mapping's keys follow the key pattern, not just its length
        for branch in props[name].get("anyOf", [props[name]]):
            keys = branch.get("patternProperties")
            if keys and len(keys) == 1:
                branch.setdefault("propertyNames", {})["pattern"] = next(iter(keys))
    schema["allOf"] = [
        {"description": "a count without a type names the types in `any_of`",
         "anyOf": [{"properties": {"gpus": {"type": "string"}}},
                   {"required": ["any_of"],
                    "properties": {"any_of": {"anyOf": [{"type": "array", "minItems": 1},
                                                        {"type": "object", "minProperties": 1}]}}}]},
        {"description": "an inference job wants at least one replica",
         "anyOf": [{"properties": {"kind": {"enum": ["training", "batch"]}}},
                   {"required": ["replicas"],
                    "properties": {"replicas": {"type": "object", "not": {"additionalProperties": {"maximum": 0}}}}}]},
    ]


class JobIn(JobSpec):
    """A job as the API takes it: the job file's fields, strictly typed, with a command to run."""

    model_config = ConfigDict(strict=True, str_strip_whitespace=False, json_schema_extra=_job_schema)

    tp: Annotated[int, Field(ge=1, le=MAX_GPUS)] | None = Field(
        None, description="tensor-parallel group size (GPUs in one NVLink domain); for training and batch it must "
                          "divide the GPU count (checked by the server: 422 otherwise)")
    command: str = Field(max_length=100_000, json_schema_extra={"pattern": COMMAND_PATTERN},
                         description="what to run: not blank, no NUL characters")
    env: dict[ModelName, NoNul] = Field(default_factory=dict)

    @field_validator("gpus")
    @classmethod
    def _gpus_spelling(cls, v: str | int) -> str | int:
        if isinstance(v, str) and not _GPUS.match(v):
            raise ValueError(f"expected TYPE:COUNT such as GB200:4096 (1..{MAX_GPUS} GPUs), found {v[:100]!r}")
        return v

    @field_validator("command")
    @classmethod
    def _command_given(cls, v: str) -> str:
        if "\x00" in v:
            raise ValueError("NUL characters are not allowed")
        if not _COMMAND.match(v):
            raise ValueError("the live control plane runs a command; give `command`")
        return v


class SubmitIn(_Body):
    job: JobIn
    key: Name | None = Field(None, description="idempotency key: a retry with the same key returns the same job; "
                                               "if the Idempotency-Key header is sent too, they must be equal")


class PortfolioIn(_Body):
    scenario: str = Field(min_length=1, max_length=20_000_000,
                          description="the scenario file's YAML text (422 when it does not parse as a scenario)")
    source: str = Field("<api>", max_length=500, pattern=r"^[^\x00]*$",
                        description="where the text came from (file name)")


class TeamIn(_Body):
    quota_gpus: int = Field(ge=0, le=MAX_GPUS)
    cohort: ModelName | None = None
    borrowing_limit: int | None = Field(None, ge=0, le=MAX_GPUS)


def _token_schema(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [
        {"description": "a team token", "required": ["team"],
         "properties": {"team": {"type": "string"}, "admin": {"const": False}}},
        {"description": "an admin token", "required": ["admin"],
         "properties": {"admin": {"const": True}, "team": {"type": "null"}}},
    ]


class TokenIn(_Body):
    """Either `team` (a team token) or `admin: true`."""

    model_config = ConfigDict(json_schema_extra=_token_schema)

    team: ModelName | None = None
    admin: bool = False
    name: Name = "token"


def _capacity_schema(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [{"properties": {"scope": {"enum": ["cluster", "provider"]}}},
                       {"description": "a domain failure names the domain index", "required": ["domain"],
                        "properties": {"domain": {"type": "integer"}}}]


class CapacityIn(_Body):
    model_config = ConfigDict(json_schema_extra=_capacity_schema)

    scope: Literal["domain", "cluster", "provider"]
    target: Name
    domain: int | None = Field(None, ge=0, le=10_000_000, description="the domain index (required for `domain`)")
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
