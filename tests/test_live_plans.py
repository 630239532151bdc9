"""Plans on the live server: made on demand and on a schedule, stored with their inputs, followed by the
engine, installed again after a restart and dropped when the portfolio changes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from live_helpers import ADMIN, LIVE_SCENARIO, make_app, wait_for
from gpufleet.server.app import Settings, create_app
from gpufleet.server.plans import guide_doc, guide_from

A = {"Authorization": f"Bearer {ADMIN}"}

# live-local with work the plan has to place: a training program that wants a cluster all month
SCENARIO = LIVE_SCENARIO.read_text() + """
workloads:
  - kind: training
    name: pretrain
    team: research
    gpus: 8
    gpu_types: {H100: 1.0}
    work_gpu_hours: 5000
    start: 2026-01-01
"""


def test_a_plan_is_made_on_demand_stored_and_followed(db_url, tmp_path):
    app, _ = make_app(db_url, tmp_path)
    with TestClient(app) as c:
        assert c.put("/v1/portfolio", json={"scenario": SCENARIO}, headers=A).status_code == 200
        r = c.post("/v1/plans", headers=A)
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["status"] == "optimal" and made["to"] == "2036-01-01" and made["inputs"]["why"] == "asked"
        listed = c.get("/v1/plans", headers=A).json()
        assert [p["id"] for p in listed] == [made["id"]]
        full = c.get(f"/v1/plans/{made['id']}", headers=A).json()
        assert full["guide"]["clusters"] == ["local-a", "local-b"]
        # the engine follows exactly the stored guide
        guide = app.state.control.engine.state.guide
        assert guide is not None and guide_doc(guide) == full["guide"]
        planned = sum(sum(row) for row in full["guide"]["workloads"]["pretrain"])
        assert planned > 0
        kinds = [e["kind"] for e in c.get("/v1/events", headers=A).json()]
        assert "plan" in kinds
        # a second plan is listed first
        second = c.post("/v1/plans", headers=A).json()
        assert [p["id"] for p in c.get("/v1/plans", headers=A).json()] == [second["id"], made["id"]]
        assert c.get("/v1/plans/999", headers=A).status_code == 404


def test_only_an_admin_plans_or_reads_plans(db_url, tmp_path):
    app, _ = make_app(db_url, tmp_path)
    with TestClient(app) as c:
        tok = c.post("/v1/tokens", json={"team": "research"}, headers=A).json()["token"]
        team = {"Authorization": f"Bearer {tok}"}
        assert c.post("/v1/plans", headers=team).status_code == 403
        assert c.get("/v1/plans", headers=team).status_code == 403
        assert c.post("/v1/plans").status_code == 401
        assert c.get("/v1/plans", headers=A).json() == []


def test_no_portfolio_no_plan(db_url, tmp_path):
    app, _ = make_app(db_url, tmp_path, scenario=None)
    with TestClient(app) as c:
        r = c.post("/v1/plans", headers=A)
        assert r.status_code == 409 and "portfolio" in r.json()["error"]


def test_a_restart_follows_the_last_plan_and_a_new_portfolio_drops_it(db_url, tmp_path):
    app, _ = make_app(db_url, tmp_path)
    with TestClient(app) as c:
        c.put("/v1/portfolio", json={"scenario": SCENARIO}, headers=A)
        doc = c.get(f"/v1/plans/{c.post('/v1/plans', headers=A).json()['id']}", headers=A).json()["guide"]
    app, _ = make_app(db_url, tmp_path, scenario=None)
    with TestClient(app) as c:
        guide = app.state.control.engine.state.guide
        assert guide is not None and guide_doc(guide) == doc
        assert c.put("/v1/portfolio", json={"scenario": LIVE_SCENARIO.read_text()}, headers=A).status_code == 200
        assert app.state.control.engine.state.guide is None
        # quotas change the engine too, but the plan of the portfolio in force stays
        c.post("/v1/plans", headers=A)
        assert c.put("/v1/teams/research", json={"quota_gpus": 8}, headers=A).status_code == 200
        assert app.state.control.engine.state.guide is not None


def test_plans_are_made_on_a_schedule(tmp_path):
    from gpufleet.backends.base import BackendSet
    from gpufleet.backends.fake import FakeBackend

    settings = Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", data_dir=str(tmp_path), scenario=str(LIVE_SCENARIO),
                        admin_token=ADMIN, poll_s=0.05, backends=BackendSet("local", {"local": FakeBackend("local")}),
                        replan_every_s=0.2)
    app = create_app(settings)
    with TestClient(app) as c:
        plans = wait_for(lambda: (p := c.get("/v1/plans", headers=A).json()) and len(p) >= 2 and p, 30,
                         "two scheduled plans")
        assert {p["made_by"] for p in plans} == {"scheduler"}
        assert plans[0]["inputs"]["why"] == "every 0.2 s"


def test_a_guide_survives_its_json_form():
    from gpufleet.placement.guide import Guide
    g = Guide(bounds_s=(0.0, 10.0, 20.0), clusters=("a", "b"), workloads={"w": ((1.0, 2.0), (3.0, 4.5))},
              kinds={"batch": ((1.0, 2.0), (3.0, 4.5))}, value=((0.0, 7.25), (0.0, 0.0)), made_at_s=5.0, label="x")
    assert guide_from(guide_doc(g)) == g


@pytest.mark.parametrize("value,ok", [("6h", 21600.0), ("1d", 86400.0), ("900s", 900.0), ("90", 90.0),
                                      ("15m", 900.0), ("soon", None), ("1s", None), ("nan", None), ("-5h", None)])
def test_replan_every_takes_a_duration_and_refuses_anything_else(value, ok):
    import typer

    from gpufleet.cli.live import _duration
    if ok is None:
        with pytest.raises(typer.Exit) as e:
            _duration(value, "--replan-every")
        assert e.value.exit_code == 2   # bad input
    else:
        assert _duration(value, "--replan-every") == ok
