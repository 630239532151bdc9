"""The OpenAPI schema tells the truth: what it calls valid the server takes and what it calls invalid the
server refuses (strict JSON types, stated bounds), every error answer is documented with its
`{"error": ...}` body, a 405 lists every method of the path, and a token that may not use a route is
refused before anything about its request is judged."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from live_helpers import ADMIN, Live, make_app
from sqlalchemy.orm import Session

from gpufleet.backends.base import BackendSet
from gpufleet.backends.fake import FakeBackend
from gpufleet.files import parse_scenario
from gpufleet.server.app import Settings, create_app
from gpufleet.server.spend import read_rows, spend
from gpufleet.store import connect

JOB = {"name": "probe", "kind": "batch", "gpus": "H100:1", "command": "true", "team": "research"}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("truth")
    app, backends = make_app(f"sqlite:///{tmp / 'gpufleet.db'}", tmp)
    with TestClient(app) as c:
        yield Live(c, backends)


@pytest.fixture(scope="module")
def spec(live) -> dict[str, Any]:
    return live.client.get("/openapi.json").json()


def body_validator(spec: dict, path: str, method: str) -> jsonschema_rs.Validator:
    """The request body's schema as the OpenAPI document states it (3.1: JSON Schema 2020-12)."""
    ref = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({**ref, "components": spec["components"]}, validate_formats=True)


# -- schema-valid is server-accepted, schema-invalid is server-refused -----------------------------------
AGREE = {
    ("POST", "/v1/jobs"): [
        {"job": JOB},
        {"job": {**JOB, "gpus": 0, "any_of": ["H100"]}},
        {"job": {**JOB, "gpus": "H100:0"}},
        {"job": {**JOB, "gpus": "H100:10000001"}},
        {"job": {**JOB, "gpus": 10_000_000, "any_of": ["H100"]}},
        {"job": {**JOB, "gpus": 2.0, "any_of": ["H100"]}},          # a whole number is an integer in JSON
        {"job": {**JOB, "gpus": 2.5, "any_of": ["H100"]}},
        {"job": {**JOB, "gpus": True, "any_of": ["H100"]}},
        {"job": {**JOB, "gpus": 2}},                                 # a count alone names no type
        {"job": {**JOB, "gpus": "lots"}},
        {"job": {**JOB, "preemptible": "true"}},
        {"job": {**JOB, "preemptible": 1}},
        {"job": {**JOB, "duration_s": "60"}},
        {"job": {**JOB, "duration_s": 60}},
        {"job": {**JOB, "priority": False}},
        {"job": {**JOB, "name": " probe"}},                          # taken as sent: no trimming
        {"job": {**JOB, "command": " \t\n"}},
        {"job": {k: v for k, v in JOB.items() if k != "command"}},
        {"job": {**JOB, "env": {"-bad": "x"}}},
        {"job": {**JOB, "env": {"GOOD": "x"}}},
        {"job": {**JOB, "kind": "inference"}},
        {"job": {**JOB, "kind": "inference", "replicas": {"local": 0}}},
        {"job": {**JOB, "kind": "inference", "replicas": {"local": 1}}},
    ],
    ("PUT", "/v1/teams/ml"): [
        {"quota_gpus": 8},
        {"quota_gpus": 8.0},
        {"quota_gpus": "8"},
        {"quota_gpus": 8, "borrowing_limit": False},
        {"quota_gpus": 8, "borrowing_limit": 0},
        {"quota_gpus": True},
        {"quota_gpus": -1},
    ],
    ("POST", "/v1/tokens"): [
        {"team": "research"},
        {"admin": True},
        {"admin": "true"},
        {"admin": 1},
        {},
        {"team": "research", "admin": True},
        {"team": "research", "admin": False},
        {"admin": False},
    ],
    ("POST", "/v1/capacity"): [
        {"scope": "domain", "target": "local-b", "domain": 0, "failed": False},
        {"scope": "domain", "target": "local-b", "failed": False},
        {"scope": "cluster", "target": "local-b", "failed": False},
        {"scope": "cluster", "target": "local-b", "failed": "no"},
        {"scope": "domain", "target": "local-b", "domain": "0", "failed": False},
    ],
}
SPEC_PATH = {"/v1/teams/ml": "/v1/teams/{name}"}


@pytest.mark.parametrize("method,path,body", [(m, p, b) for (m, p), bodies in AGREE.items() for b in bodies],
                         ids=lambda v: json.dumps(v) if isinstance(v, dict) else str(v))
def test_the_schema_and_the_server_agree_on_what_is_valid(live, spec, method, path, body):
    valid = body_validator(spec, SPEC_PATH.get(path, path), method.lower()).is_valid(body)
    r = live.client.request(method, path, json=body, headers=live.admin)
    # a well-formed job that no cluster of this portfolio could ever take is refused for that reason alone
    # (documented on the operation: the schema cannot know the portfolio)
    semantic = r.status_code == 422 and "can never run on this portfolio" in r.text
    assert (r.status_code < 300 or semantic) == valid, (body, valid, r.status_code, r.text)
    if not valid:
        assert r.status_code == 422 and r.json()["error"], r.text


def test_gpus_zero_is_invalid_in_the_schema_and_refused(live, spec):
    gpus = spec["components"]["schemas"]["JobIn"]["properties"]["gpus"]
    assert {"type": "integer", "minimum": 1, "maximum": 10_000_000} in gpus["anyOf"]
    for zero in (0, "H100:0"):
        r = live.client.post("/v1/jobs", json={"job": {**JOB, "gpus": zero, "any_of": ["H100"]}}, headers=live.admin)
        assert r.status_code == 422 and "job.gpus" in r.json()["error"], r.text


def test_a_false_borrowing_limit_is_refused_not_stored_as_zero(live):
    r = live.client.put("/v1/teams/strict", json={"quota_gpus": 8, "borrowing_limit": False}, headers=live.admin)
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "borrowing_limit"
    teams = live.client.get("/v1/teams", headers=live.admin).json()
    assert "strict" not in {t["name"] for t in teams}


@pytest.mark.parametrize("since", ["0.5", "1700000000", "-3", "1e9"])
def test_a_number_for_a_date_time_is_refused(live, spec, since):
    (param,) = [p for p in spec["paths"]["/v1/spend"]["get"]["parameters"] if p["name"] == "since"]
    assert {"type": "string", "format": "date-time"} in param["schema"]["anyOf"]
    r = live.client.get("/v1/spend", params={"since": since}, headers=live.admin)
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "query.since", r.text


def test_a_date_time_is_taken(live):
    for since in ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00+02:00"):
        assert live.client.get("/v1/spend", params={"since": since}, headers=live.admin).status_code == 200


def test_capacity_blocks_need_an_instance_type_and_the_schema_says_so(live, spec):
    params = spec["paths"]["/v1/backends/{name}/capacity-blocks"]["get"]["parameters"]
    assert next(p for p in params if p["name"] == "instance_type")["required"] is True
    r = live.client.get("/v1/backends/local/capacity-blocks", headers=live.admin)
    assert r.status_code == 422 and "instance_type" in r.json()["error"]


# -- documented answers ---------------------------------------------------------------------------------
def test_every_operation_documents_its_errors_with_the_error_body(spec):
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            if op.get("security"):
                assert "401" in codes, (method, path)
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in codes, (method, path)
            if op.get("requestBody"):
                assert "400" in codes, (method, path)
            for code, answer in op["responses"].items():
                if code[0] in "45":
                    assert answer["content"] == {"application/json": {"schema": {
                        "$ref": "#/components/schemas/ErrorOut"}}}, (method, path, code)


def test_an_error_answer_matches_the_documented_error_body(live, spec):
    error = jsonschema_rs.validator_for({"$ref": "#/components/schemas/ErrorOut", "components": spec["components"]})
    answers = [live.client.get("/v1/jobs/999999", headers=live.admin),             # 404 from the route
               live.client.get("/v1/jobs/abc", headers=live.admin),                # 422 from validation
               live.client.get("/v1/tokens"),                                      # 401
               live.client.get("/v1/tokens", headers=live.team("research")),       # 403
               live.client.delete("/v1/jobs", headers=live.admin)]                 # 405 from routing
    assert [r.status_code for r in answers] == [404, 422, 401, 403, 405]
    for r in answers:
        assert error.is_valid(r.json()), r.text


def test_a_405_lists_every_method_the_path_serves(live, spec):
    for path, operations in spec["paths"].items():
        url = path.replace("{job_id}", "1").replace("{token_id}", "1").replace("{name}", "x")
        documented = {m.upper() for m in operations}
        for method in {"GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"} - documented:
            r = live.client.request(method, url, headers=live.admin)
            assert r.status_code == 405, (method, url, r.status_code)
            allowed = {m.strip() for m in r.headers["allow"].split(",")}
            assert allowed - {"HEAD"} == documented, (method, url, r.headers["allow"])
            assert r.json()["error"]


# -- permission before validation -----------------------------------------------------------------------
ADMIN_ONLY_BAD = [
    ("PUT", "/v1/teams/ml", {"json": {"quota_gpus": "lots", "colour": "red"}}),
    ("PUT", "/v1/teams/-bad-name", {"json": {}}),
    ("PUT", "/v1/portfolio", {"json": {"scenario": 5}}),
    ("POST", "/v1/tokens", {"json": {"admin": "yes please"}}),
    ("POST", "/v1/capacity", {"json": {"scope": "galaxy"}}),
    ("GET", "/v1/spend", {"params": {"since": "0.5"}}),
    ("GET", "/v1/backends/local/capacity-blocks", {"params": {"count": -1}}),
    ("POST", "/v1/backends/local/capacity-blocks", {"json": {"offering_id": ""}}),
    ("DELETE", "/v1/tokens/0", {}),
    ("PUT", "/v1/teams/ml", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/v1/tokens", {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}),
]


@pytest.mark.parametrize("method,url,kw", ADMIN_ONLY_BAD, ids=[f"{m} {u} {list(k)}" for m, u, k in ADMIN_ONLY_BAD])
def test_a_team_token_is_refused_before_its_bad_request_is_judged(live, method, url, kw):
    team = live.team("research")
    headers = {**kw.get("headers", {}), **team}
    r = live.client.request(method, url, **{**kw, "headers": headers})
    assert r.status_code == 403, r.text
    assert r.json() == {"error": "this needs an admin token"}  # nothing about the request's fields
    anonymous = live.client.request(method, url, **{**kw, "headers": kw.get("headers", {})})
    assert anonymous.status_code == 401 and "problems" not in anonymous.json()
    judged = live.client.request(method, url, **{**kw, "headers": {**kw.get("headers", {}), **live.admin}})
    assert judged.status_code in (400, 422), judged.text  # an admin is told what is wrong


# -- the fast path gives the route's answers to the strict rules -----------------------------------------
def test_the_fast_path_answers_strict_bodies_as_the_route(db_url, tmp_path):
    app, backends = make_app(db_url, tmp_path)
    fast = app.state.fast_submit.wrap(app)
    with TestClient(app) as plain:
        research = Live(plain, backends).team("research")
        fast_client = TestClient(fast)
        bodies = [{"job": {**JOB, "gpus": 0, "any_of": ["H100"]}}, {"job": {**JOB, "preemptible": "true"}},
                  {"job": {**JOB, "name": " padded"}}, {"job": {**JOB, "command": "  "}},
                  {"job": {**JOB, "env": {"A": "\x00"}}}, {"job": {**JOB, "priority": 1.5}}]
        for body in bodies:
            via_fast = fast_client.post("/v1/jobs", json=body, headers=research)
            via_route = plain.post("/v1/jobs", json=body, headers=research)
            assert via_fast.status_code == via_route.status_code == 422, body
            assert via_fast.json() == via_route.json()
        whole = {"job": {**JOB, "name": "whole", "gpus": 1.0, "any_of": ["H100"], "duration_s": 5}}
        assert fast_client.post("/v1/jobs", json=whole, headers=research).status_code == 201


# -- a bill that opens long before anything cost anything -------------------------------------------------
def test_a_window_opening_long_before_any_cost_bills_the_same(tmp_path):
    """Billed from the first cost (not hour by hour since 1900), with the same result."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = (today - dt.timedelta(days=20)).date()
    scenario = tmp_path / "reserved.yaml"
    scenario.write_text(f"""
name: reserved
start: {start}
end: {start.replace(year=start.year + 2)}
providers: [{{name: cw, kind: coreweave, regions: [r1]}}]
clusters: [{{name: cw-h100, provider: cw, region: r1, gpu: H100, domain_size: 8, domains: 2, price_per_gpu_hour: 5.0,
             backend: local}}]
contracts:
  - {{name: cw-reserved, kind: reserved_capacity, provider: cw, clusters: [cw-h100], start: {start},
     end: {start.replace(year=start.year + 2)}, gpus: 8, price_per_gpu_hour: 2.0}}
teams: [{{name: research, quota_gpus: 16}}]
""")
    db_url = f"sqlite:///{tmp_path / 'g.db'}"
    settings = Settings(db_url=db_url, data_dir=str(tmp_path), scenario=str(scenario), admin_token=ADMIN,
                        poll_s=0.05, backends=BackendSet("local", {"local": FakeBackend("local")}))
    until = today - dt.timedelta(days=2)
    with TestClient(create_app(settings)) as c:
        bill = c.get("/v1/spend", headers={"Authorization": f"Bearer {ADMIN}"},
                     params={"since": "1900-01-01T00:00:00Z", "until": until.isoformat()}).json()
    assert bill["since"] == dt.datetime(1900, 1, 1, tzinfo=dt.UTC).timestamp()
    # the same window billed directly from ten days before the contract: the early days cost nothing
    early = (today - dt.timedelta(days=30)).timestamp()
    with Session(connect(db_url)) as s:
        usage, fees = read_rows(s, early, until.timestamp())
    direct = spend(parse_scenario(scenario.read_text(), "reserved.yaml"), usage, fees, early, until.timestamp())
    assert bill["contracts"][0]["usage_usd"] == pytest.approx(18 * 24 * 8 * 2.0)  # 18 days of 8 paid GPUs
    assert {k: v for k, v in bill.items() if k not in ("since", "unsettled", "teams")} == \
        {k: v for k, v in direct.items() if k != "since"}

