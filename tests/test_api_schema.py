"""The HTTP API against its own OpenAPI schema: Schemathesis generates requests for every operation (valid
and invalid ones) and runs all its checks on each answer: no 5xx, only documented status codes and
bodies, schema-valid requests accepted and schema-invalid ones refused, 405 with the full `Allow`, a
token required wherever the schema says so. Every 4xx says what was wrong in a JSON `error`.
Hand-written bad requests (missing, mistyped, unknown or huge fields, non-JSON, wrong content type) get a
4xx naming the field."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from live_helpers import ADMIN, make_app
from schemathesis.checks import positive_data_acceptance

from gpufleet.files import FileError, parse_scenario

JOB = {"name": "probe", "kind": "batch", "gpus": "H100:1", "command": "true"}


# -- generated requests ---------------------------------------------------------------------------------
# The schema is read from an app that is never started; each test then gets a fresh, running server.
# (`schemathesis.pytest.from_fixture` would load it from a fixture, but with pytest 9 it fails: it sets
# `request.node._nodeid`, which pytest 9 nodes no longer have.)
RAW = make_app("sqlite://", Path(tempfile.gettempdir()))[0].openapi()
TEAM = "research-team-token"  # the team token the team run uses (made with this value by the fixture)


def with_token(token: str, loaded):
    """The schema, with `token` on every generated request so requests reach the handlers. Schemathesis
    still leaves it off the requests that test a missing token, and sends its own probes without it."""

    @loaded.auth(refresh_interval=None)
    class Bearer:
        def get(self, case, context):
            return token

        def set(self, case, data, context):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return loaded


# The admin run leaves token revocation out: revoking the run's own tokens would end it.
admin_schema = with_token(ADMIN, schemathesis.openapi.from_dict(RAW)).exclude(
    method="DELETE", path="/v1/tokens/{token_id}")
team_schema = with_token(TEAM, schemathesis.openapi.from_dict(RAW))


@dataclass
class Server:
    app: Any
    first: float          # when its first portfolio was loaded: where a bill starts by default


def start_server(tmp_path: Path) -> Server:
    """A fresh server with some work in it. Loading its schema with `from_asgi` starts its lifespan (the
    control loop); the Schemathesis plugin ends it after the test."""
    app, _ = make_app(f"sqlite:///{tmp_path / 'gpufleet.db'}", tmp_path)
    served = schemathesis.openapi.from_asgi("/openapi.json", app)
    assert served.raw_schema == RAW
    client = TestClient(app)  # no `with`: the lifespan runs already; a second one would start a second loop
    admin = {"Authorization": f"Bearer {ADMIN}"}
    app.state.tokens.create("research", "research", False, token=TEAM)
    research = {"Authorization": f"Bearer {TEAM}"}
    wide = {**JOB, "gpus": "H100:8", "tp": 8}     # two fill the fleet's two domains: the next job waits
    ids = [client.post("/v1/jobs", json={"job": job}, headers=research).json()["id"]
           for job in ({**wide, "name": "one"}, {**wide, "name": "two"}, {**JOB, "name": "gone"})]
    assert client.post(f"/v1/jobs/{ids[2]}/cancel", headers=research).status_code == 200
    return Server(app, client.get("/v1/spend", headers=admin).json()["since"])


@pytest.fixture
def server(tmp_path):
    return start_server(tmp_path)


def error_of(response) -> Any:
    """The `error` of a JSON error body (None when the body is not JSON)."""
    ctype = next((v[0] for k, v in response.headers.items() if k.lower() == "content-type"), "")
    if not ctype.startswith("application/json"):
        return None
    body = response.json()
    return body.get("error") if isinstance(body, dict) else None


def _moment(value: Any) -> float | None:
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def _whole(v: Any) -> int | None:
    """A JSON whole number (8 or 8.0), else None."""
    if type(v) is float and v.is_integer():
        return int(v)
    return v if type(v) is int else None


def _gpu_count(gpus: Any) -> int | None:
    count = gpus.rpartition(":")[2].strip() if isinstance(gpus, str) else ""
    return int(count) if count.isascii() and count.isdigit() else _whole(gpus)


def unstated_rule(case, server: Server) -> str | None:
    """The rule, stated in the schema's descriptions but beyond what JSON Schema can say, that a generated
    request breaks (the server answers it 422), or None."""
    body = case.body if isinstance(case.body, dict) else {}
    if case.operation.label in ("POST /v1/jobs", "POST /v1/dry-run"):
        header = next((v for k, v in (case.headers or {}).items() if k.lower() == "idempotency-key"), None)
        if body.get("key") and header and body["key"] != header:
            return "the body's key and the Idempotency-Key header differ"
        job = body.get("job") if isinstance(body.get("job"), dict) else {}
        tp, count = _whole(job.get("tp")), _gpu_count(job.get("gpus"))
        if job.get("kind", "training") != "inference" and tp and tp > 0 and count and count % tp:
            return "tp does not divide the GPU count"
        # a dry run answers a job that could never run with `would_place: false` and the reason, not 422
        if case.operation.label == "POST /v1/jobs" and _never_runs(job, case, server):
            return "no cluster of the portfolio could ever take the job"
    if case.operation.label == "PUT /v1/portfolio" and isinstance(body.get("scenario"), str):
        try:
            parse_scenario(body["scenario"], "<api>")
        except FileError:
            return "the scenario does not parse"
    if case.operation.label == "POST /v1/reports" and isinstance(body.get("doc"), dict):
        from gpufleet.server.routes.dash import _render
        try:
            _render(body["doc"], "t", None)
        except Exception:
            return "the doc is not a `gpufleet simulate --json` document"
    if case.operation.label == "GET /v1/spend":
        since, until = _moment((case.query or {}).get("since")), _moment((case.query or {}).get("until"))
        start = since if since is not None else server.first
        if start > time.time() or (until is not None and until < start):
            return "the window is in the future or ends before it starts"
    return None


def _never_runs(job: dict, case, server: Server) -> bool:
    """What the operation's description states: a well-formed job that no cluster could ever take is
    refused. Asked of a scheduler of its own on the server's portfolio (no live state is read)."""
    from gpufleet.placement.engine import Engine
    from gpufleet.scheduling.scheduler import Scheduler
    from gpufleet.scheduling.translate import job_work
    from gpufleet.server.schemas import SubmitIn
    ctl = server.app.state.control
    if ctl.portfolio is None:
        return False
    auth = next((v for k, v in (case.headers or {}).items() if k.lower() == "authorization"), "")
    try:   # the server's own reading of the body
        spec = SubmitIn.model_validate({"job": job}).job
        if auth.endswith(TEAM):
            spec = spec.model_copy(update={"team": "research"})
        w = job_work(spec, ctl.catalog, 0.0, prefix="probe")
    except (ValueError, KeyError):
        return False
    return Scheduler(Engine(ctl.portfolio, time.time())).never_runs(w) is not None


def check(case, server: Server) -> None:
    """Send a generated request and run every Schemathesis check on the answer."""
    rule = unstated_rule(case, server)
    # The schema was read from another app: send this case, and the checks' own probes, to this server.
    case.operation.schema.app = server.app
    response = case.call_and_validate(app=server.app, base_url="http://testserver",
                                      excluded_checks=[positive_data_acceptance] if rule else None)
    if rule and case.meta is not None and case.meta.generation.mode.is_positive:
        assert response.status_code in (403, 422), (case.operation.label, rule, response.status_code, response.text)
    if 400 <= response.status_code < 500:
        error = error_of(response)
        assert isinstance(error, str) and error.strip(), \
            f"{case.operation.label} -> {response.status_code} without a JSON error: {response.text[:300]}"


GENERATED = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@GENERATED
@admin_schema.parametrize()
def test_generated_requests_with_the_admin_token_pass_every_check(case, server):
    check(case, server)


@GENERATED
@team_schema.parametrize()
def test_generated_requests_with_a_team_token_pass_every_check(case, server):
    check(case, server)


# -- hand-written bad requests --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-bodies")
    app, _ = make_app(f"sqlite:///{tmp / 'gpufleet.db'}", tmp)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN}"
        yield c


def job_with(**fields: Any) -> dict:
    return {"job": {**JOB, **fields}}


BAD = [
    # (what, method, url, JSON body, words the error must contain)
    ("no body at all", "POST", "/v1/jobs", None, ["body", "required"]),
    ("job missing", "POST", "/v1/jobs", {}, ["job", "required"]),
    ("job not an object", "POST", "/v1/jobs", {"job": "train"}, ["job"]),
    ("gpus missing", "POST", "/v1/jobs", {"job": {"name": "x", "command": "true"}}, ["job.gpus"]),
    ("gpus malformed", "POST", "/v1/jobs", job_with(gpus="lots"), ["job.gpus", "TYPE:COUNT"]),
    ("tp a string", "POST", "/v1/jobs", job_with(kind="training", tp="eight"), ["job.tp"]),
    ("priority a float", "POST", "/v1/jobs", job_with(priority=1.5), ["job.priority"]),
    ("kind unknown", "POST", "/v1/jobs", job_with(kind="quantum"), ["job.kind"]),
    ("env not strings", "POST", "/v1/jobs", job_with(env={"A": 1}), ["job.env.A"]),
    ("unknown top-level field", "POST", "/v1/jobs", {**job_with(), "bogus": 1}, ["bogus"]),
    ("unknown job field", "POST", "/v1/jobs", job_with(gpu_type="H100"), ["job.gpu_type"]),
    ("huge GPU count", "POST", "/v1/jobs", job_with(gpus="H100:99999999999999999999"), ["job.gpus"]),
    ("huge integer", "POST", "/v1/jobs", job_with(priority=10**40), ["job.priority"]),
    ("huge float", "POST", "/v1/jobs", job_with(duration_s=1e300), ["job.duration_s"]),
    ("no command", "POST", "/v1/jobs", {"job": {"name": "x", "gpus": "H100:1"}}, ["command"]),
    ("body key malformed", "POST", "/v1/jobs", {**job_with(), "key": "no spaces please"}, ["key"]),
    ("quota a string", "PUT", "/v1/teams/ml", {"quota_gpus": "lots"}, ["quota_gpus"]),
    ("quota negative", "PUT", "/v1/teams/ml", {"quota_gpus": -1}, ["quota_gpus"]),
    ("quota huge", "PUT", "/v1/teams/ml", {"quota_gpus": 10**30}, ["quota_gpus"]),
    ("team unknown field", "PUT", "/v1/teams/ml", {"quota_gpus": 1, "colour": "red"}, ["colour"]),
    ("team name malformed", "PUT", "/v1/teams/-x", {"quota_gpus": 1}, ["name"]),
    ("token both team and admin", "POST", "/v1/tokens", {"team": "research", "admin": True},
     ["team", "admin"]),
    ("token admin a string", "POST", "/v1/tokens", {"admin": "yes please"}, ["admin"]),
    ("capacity scope unknown", "POST", "/v1/capacity", {"scope": "galaxy", "target": "x"}, ["scope"]),
    ("capacity domain missing", "POST", "/v1/capacity", {"scope": "domain", "target": "local-a"}, ["domain"]),
    ("capacity domain huge", "POST", "/v1/capacity",
     {"scope": "domain", "target": "local-a", "domain": 2**70}, ["domain"]),
    ("scenario missing", "PUT", "/v1/portfolio", {}, ["scenario"]),
    ("scenario not YAML", "PUT", "/v1/portfolio", {"scenario": "clusters: [1, 2"}, ["YAML"]),
    ("scenario incomplete", "PUT", "/v1/portfolio", {"scenario": "name: x"}, ["clusters"]),
    ("job id not a number", "GET", "/v1/jobs/abc", None, ["job_id"]),
    ("job id huge", "GET", "/v1/jobs/99999999999999999999999", None, ["job_id"]),
    ("limit huge", "GET", "/v1/jobs?limit=100000000000000000000", None, ["limit"]),
    ("after negative", "GET", "/v1/events?after=-1", None, ["after"]),
    ("tail zero", "GET", "/v1/jobs/1/logs?tail=0", None, ["tail"]),
    ("token id zero", "DELETE", "/v1/tokens/0", None, ["token_id"]),
]


@pytest.mark.parametrize("what,method,url,body,words", BAD, ids=[b[0] for b in BAD])
def test_a_bad_request_gets_a_4xx_naming_what_is_wrong(client, what, method, url, body, words):
    r = client.request(method, url, json=body)
    assert 400 <= r.status_code < 500, (what, r.status_code, r.text)
    error = r.json()["error"]
    for word in words:
        assert word.lower() in error.lower(), (what, word, error)


# Bodies the schema accepts but the job or team model cannot hold: they must be refused up front with a
# 4xx, not fail inside the control loop (which answers 503 to every request in the same batch).
ACCEPTED_BY_SCHEMA_ONLY = [
    ("team name the model refuses", "PUT", "/v1/teams/ml+ops", {"quota_gpus": 8}, ["name"]),
    ("team name longer than the model's", "PUT", "/v1/teams/" + "t" * 120, {"quota_gpus": 8}, ["name"]),
    ("cohort the model refuses", "PUT", "/v1/teams/ml", {"quota_gpus": 8, "cohort": "c@d"}, ["cohort"]),
    ("quota above the model's bound", "PUT", "/v1/teams/ml", {"quota_gpus": 50_000_000}, ["quota_gpus"]),
    ("inference with no replicas", "POST", "/v1/jobs", job_with(kind="inference", replicas={"local": 0}),
     ["replicas"]),
    ("batch GPUs not whole tp groups", "POST", "/v1/jobs", job_with(gpus="H100:2", tp=3), ["job", "groups"]),
]


@pytest.mark.parametrize("what,method,url,body,words", ACCEPTED_BY_SCHEMA_ONLY,
                         ids=[b[0] for b in ACCEPTED_BY_SCHEMA_ONLY])
def test_a_body_the_models_refuse_gets_a_4xx_not_a_5xx(client, what, method, url, body, words):
    r = client.request(method, url, json=body)
    assert 400 <= r.status_code < 500, (what, r.status_code, r.text)
    error = r.json()["error"]
    for word in words:
        assert word.lower() in error.lower(), (what, word, error)
    assert client.get("/health").json()["status"] == "ok"


AS_JSON = {"Content-Type": "application/json"}


def test_a_body_that_is_not_json_gets_a_422_saying_so(client):
    r = client.post("/v1/jobs", content=b"name: train\ngpus: H100:8", headers=AS_JSON)
    assert r.status_code == 422
    assert "JSON" in r.json()["error"]


def test_truncated_json_gets_a_422(client):
    r = client.post("/v1/jobs", content=json.dumps(job_with())[:-3], headers=AS_JSON)
    assert r.status_code == 422
    assert "JSON" in r.json()["error"]


def test_a_json_body_sent_as_another_content_type_is_refused(client):
    before = client.get("/v1/jobs").json()
    r = client.post("/v1/jobs", content=json.dumps(job_with()), headers={"Content-Type": "text/plain"})
    assert 400 <= r.status_code < 500
    assert "body" in r.json()["error"]
    assert client.get("/v1/jobs").json() == before


def test_a_huge_body_is_refused_with_a_4xx(client):
    r = client.post("/v1/jobs", json=job_with(command="x" * 200_000))
    assert r.status_code == 422 and "job.command" in r.json()["error"]


def test_nan_and_infinity_are_refused(client):
    # Python's JSON parser reads these non-standard literals; the models must still refuse them
    for literal in ("NaN", "Infinity", "-Infinity"):
        text = json.dumps(job_with(duration_s=12345.5)).replace("12345.5", literal)
        r = client.post("/v1/jobs", content=text, headers=AS_JSON)
        assert r.status_code == 422 and "job.duration_s" in r.json()["error"], (literal, r.text)


# Errors raised by routing or body parsing (Starlette's, not the app's) must have the same JSON shape.
SHAPE = {
    "unknown path": ("GET", "/v1/nowhere", {}, 404),
    "wrong method": ("DELETE", "/v1/jobs", {}, 405),
    "body not UTF-8": ("POST", "/v1/tokens", {"content": b"\xff\xfe\xfa", "headers": AS_JSON}, 400),
}


@pytest.mark.parametrize("what", SHAPE)
def test_routing_and_parsing_errors_have_the_error_shape_too(client, what):
    method, url, kw, status = SHAPE[what]
    r = client.request(method, url, **kw)
    assert r.status_code == status
    assert isinstance(r.json().get("error"), str) and r.json()["error"], (what, r.text)


# -- NUL bytes: SQLite stores them, PostgreSQL refuses them; either way the client gets a 4xx or success -----
NUL_REQUESTS = {
    "team filter": ("GET", "/v1/jobs", {"params": {"team": "a\x00b"}}),
    "state filter": ("GET", "/v1/jobs", {"params": {"state": "\x00"}}),
    "capacity reason": ("POST", "/v1/capacity", {"json": {"scope": "cluster", "target": "local-b",
                                                          "reason": "bad\x00disk"}}),
    "job command and env": ("POST", "/v1/jobs", {"json": job_with(command="echo \x00", env={"K": "v\x00"})}),
    "scenario": ("PUT", "/v1/portfolio", {"json": {"scenario": "name: a\x00b"}}),
}


@pytest.mark.parametrize("what", NUL_REQUESTS)
def test_a_nul_byte_never_gets_a_5xx(db_url, tmp_path, what):
    method, url, kw = NUL_REQUESTS[what]
    app, _ = make_app(db_url, tmp_path)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.request(method, url, headers={"Authorization": f"Bearer {ADMIN}"}, **kw)
        assert r.status_code < 500, (method, url, r.status_code, r.text[:300])
        if r.status_code >= 400:
            assert r.json()["error"]
