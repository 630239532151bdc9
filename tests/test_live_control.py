"""The control loop through the API, on SQLite and PostgreSQL: submit, place, run, finish, cancel,
idempotency, priority order, preemption, lost capacity, dead backends, restarts."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient
from live_helpers import LIVE_SCENARIO, Live, make_app, wait_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gpufleet.backends.fake import FakeBackend
from gpufleet.store import connect
from gpufleet.store import tables as T


def kinds(live: Live, job_id: int) -> list[str]:
    r = live.client.get("/v1/events", params={"job": job_id}, headers=live.admin)
    return [e["kind"] for e in r.json()]


def test_a_job_is_placed_started_and_finishes(live):
    research = live.team("research")
    jid = live.submit(research, name="train", kind="training", gpus="H100:8", tp=8, command="python train.py")["id"]
    j = live.wait_state(jid, "running")
    assert j["attempt"] == 1 and j["placements"][0]["parts"] == [[0, 8]]
    assert j["placements"][0]["cluster"] == "local-a"  # the cheaper of the two
    fake = live.backends["local"]
    launch = fake.launches[-1]
    assert (launch.job_id, launch.gpus, launch.group, launch.command) == (jid, 8, 8, "python train.py")
    fake.finish(jid, 0)
    j = live.wait_state(jid, "succeeded")
    assert j["exit_code"] == 0 and j["placements"][0]["outcome"] == "succeeded"
    assert kinds(live, jid) == ["submitted", "placed", "started", "succeeded"]
    free = {c["name"]: c["free_gpus"] for c in live.client.get("/v1/portfolio", headers=research).json()["clusters"]}
    assert free == {"local-a": 8, "local-b": 8}


def test_a_failing_exit_status_fails_the_job(live):
    jid = live.submit(live.team("research"), name="bad")["id"]
    live.wait_state(jid, "running")
    live.backends["local"].finish(jid, 3)
    j = live.wait_state(jid, "failed")
    assert j["exit_code"] == 3 and "exit status 3" in j["reason"]


def test_the_same_key_never_creates_a_second_job(live, db_url):
    research = live.team("research")
    first = live.submit(research, key="k-1", name="a")
    again = live.client.post("/v1/jobs", json={"job": {"name": "a", "gpus": "H100:1", "command": "true"},
                                                "key": "k-1"}, headers=research)
    assert again.status_code == 200 and again.json() == {**first, "created": False}
    # concurrent retries of one key land in the same batch or in different ones: still one job
    results: list[int] = []

    def post() -> None:
        r = live.client.post("/v1/jobs", json={"job": {"name": "b", "gpus": "H100:1", "command": "true"}},
                             headers={**research, "Idempotency-Key": "k-2"})
        results.append(r.json()["id"])
    threads = [threading.Thread(target=post) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    # the same key in another team is another job
    serving = live.submit(live.team("serving"), key="k-1", name="a")
    assert serving["id"] != first["id"] and serving["created"]
    with Session(connect(db_url)) as s:
        assert s.scalar(select(func.count()).select_from(T.Job).where(T.Job.key == "k-1")) == 2
        assert s.scalar(select(func.count()).select_from(T.Job).where(T.Job.key == "k-2")) == 1
    listed = live.client.get("/v1/jobs", headers=research).json()
    assert {j["key"] for j in listed} == {"k-1", "k-2"}


def test_cancel_stops_running_work_and_frees_its_gpus(live):
    research = live.team("research")
    jid = live.submit(research, name="long", gpus="H100:8", tp=8)["id"]
    live.wait_state(jid, "running")
    r = live.client.post(f"/v1/jobs/{jid}/cancel", headers=research)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    wait_for(lambda: live.backends["local"].cancelled, what="the backend to be told")
    j = live.job(jid)
    assert j["state"] == "cancelled" and j["placements"][0]["outcome"] == "cancelled"
    # cancelling again changes nothing
    assert live.client.post(f"/v1/jobs/{jid}/cancel", headers=research).json()["state"] == "cancelled"
    nxt = live.submit(research, name="next", gpus="H100:8", tp=8)["id"]
    assert live.wait_state(nxt, "running")["placements"][0]["cluster"] == "local-a"


def test_queued_work_waits_in_priority_order(live):
    research = live.team("research")
    fill = [live.submit(research, name=f"fill{i}", gpus="H100:8", tp=8, priority=900)["id"] for i in range(2)]
    for jid in fill:
        live.wait_state(jid, "running")
    low = live.submit(research, name="low", gpus="H100:8", tp=8, priority=1)["id"]
    high = live.submit(research, name="high", gpus="H100:8", tp=8, priority=50)["id"]
    wait_for(lambda: live.job(high)["reason"], what="a reason for waiting")
    assert live.job(low)["state"] == live.job(high)["state"] == "queued"
    live.backends["local"].finish(fill[0], 0)
    live.wait_state(high, "running")
    assert live.job(low)["state"] == "queued"


def test_higher_priority_work_preempts_and_the_victim_comes_back(live):
    research, serving = live.team("research"), live.team("serving")
    victims = [live.submit(research, name=f"batch{i}", gpus="H100:8", tp=8, priority=5, preemptible=True)["id"]
               for i in range(2)]
    for jid in victims:
        live.wait_state(jid, "running")
    urgent = live.submit(serving, name="urgent", kind="training", gpus="H100:8", tp=8, priority=900)["id"]
    live.wait_state(urgent, "running")
    states = {jid: live.job(jid)["state"] for jid in victims}
    assert sorted(states.values()) == ["queued", "running"]
    victim = next(j for j, s in states.items() if s == "queued")
    assert "no cluster can take it now" in live.job(victim)["reason"]  # why it waits now
    requeued = [e for e in live.client.get("/v1/events", params={"job": victim}, headers=live.admin).json()
                if e["kind"] == "requeued"]
    assert len(requeued) == 1 and f"preempted by job {urgent}" in requeued[0]["message"]
    live.backends["local"].finish(urgent, 0)
    j = live.wait_state(victim, "running")
    assert j["attempt"] == 2 and [p["outcome"] for p in j["placements"]] == ["preempted", None]


def test_a_failed_cluster_sends_its_work_elsewhere(live):
    research = live.team("research")
    jid = live.submit(research, name="t", kind="training", gpus="H100:8", tp=8, checkpoint_interval_s=60)["id"]
    assert live.wait_state(jid, "running")["placements"][0]["cluster"] == "local-a"
    r = live.client.post("/v1/capacity", json={"scope": "cluster", "target": "local-a", "reason": "rack fire"},
                         headers=live.admin)
    assert r.status_code == 200 and r.json()["requeued"] == [jid]
    j = wait_for(lambda: (j := live.job(jid))["attempt"] == 2 and j["state"] == "running" and j, what="restart")
    assert [p["cluster"] for p in j["placements"]] == ["local-a", "local-b"]
    assert j["placements"][0]["outcome"] == "lost"
    assert live.backends["local"].launches[-1].checkpoint_dir == live.backends["local"].launches[0].checkpoint_dir
    caps = live.client.get("/v1/capacity", headers=live.admin).json()
    assert [(c["scope"], c["target"], c["reason"]) for c in caps] == [("cluster", "local-a", "rack fire")]
    live.client.post("/v1/capacity", json={"scope": "cluster", "target": "local-a", "failed": False},
                     headers=live.admin)
    assert live.client.get("/v1/capacity", headers=live.admin).json() == []


def test_a_dead_backend_loses_its_clusters_and_work_finishes_elsewhere(db_url, tmp_path):
    scenario = tmp_path / "two.yaml"
    scenario.write_text(LIVE_SCENARIO.read_text().replace("backend: local\n", "backend: a\n", 1)
                        .replace("backend: local\n", "backend: b\n", 1))
    a, b = FakeBackend("a"), FakeBackend("b")
    app, _ = make_app(db_url, tmp_path, backends={"a": a, "b": b}, default="a", scenario=scenario)
    with TestClient(app) as c:
        live = Live(c, {"a": a, "b": b})
        jid = live.submit(live.team("research"), name="t", gpus="H100:4")["id"]
        assert live.wait_state(jid, "running")["placements"][0]["cluster"] == "local-a"
        a.kill()
        j = wait_for(lambda: (j := live.job(jid))["state"] == "running" and j["attempt"] == 2 and j, what="failover")
        assert j["placements"][-1]["cluster"] == "local-b"
        events = live.client.get("/v1/events", headers=live.admin).json()
        lost = [e for e in events if e["kind"] == "capacity_lost"]
        assert [(e["detail"]["target"], e["actor"]) for e in lost] == [("local-a", "backend:a")]
        assert "backend a unreachable" in lost[0]["message"]
        assert a.cancelled == []  # no stop sent to a backend that does not answer (it would hold up B's start)
        stale = a.running and next(iter(a.running))
        b.finish(jid, 0)
        live.wait_state(jid, "succeeded")
        a.revive()
        wait_for(lambda: c.get("/v1/capacity", headers=live.admin).json() == [], what="backend a back")
        # whatever still ran on A when it came back is stopped then
        wait_for(lambda: a.cancelled == [stale], what="the stale attempt on A stopped")
        assert live.job(jid)["state"] == "succeeded"


def test_a_service_places_all_its_replicas_or_none(live):
    serving = live.team("serving")
    svc = live.submit(serving, name="chat", kind="inference", gpus="H100:4", replicas={"local": 2})["id"]
    j = live.wait_state(svc, "running")
    assert sorted(p["request"] for p in j["placements"]) == [f"{svc}/local/0", f"{svc}/local/1"]
    too_many = live.submit(serving, name="big", kind="inference", gpus="H100:8", replicas={"local": 2})["id"]
    wait_for(lambda: live.job(too_many)["reason"], what="a reason")
    assert live.job(too_many)["state"] == "queued" and live.job(too_many)["placements"] == []
    placements = live.client.get("/v1/placements", headers=serving).json()
    assert {p["job_id"] for p in placements} == {svc}


def test_quota_changes_apply_to_waiting_work(live):
    research = live.team("research")
    r = live.client.put("/v1/teams/research", json={"quota_gpus": 0}, headers=live.admin)
    assert r.status_code == 200
    jid = live.submit(research, name="q", gpus="H100:2")["id"]
    reason = wait_for(lambda: live.job(jid)["reason"], what="a reason")
    assert "uses 0 of 0 GPUs" in reason and live.job(jid)["state"] == "queued"
    live.client.put("/v1/teams/research", json={"quota_gpus": 4}, headers=live.admin)
    live.wait_state(jid, "running")
    teams = live.client.get("/v1/teams", headers=research).json()
    assert teams == [{"name": "research", "quota_gpus": 4, "cohort": None, "borrowing_limit": None, "used_gpus": 2}]


def test_a_new_portfolio_keeps_running_work_in_place(live):
    research = live.team("research")
    jid = live.submit(research, name="t", gpus="H100:4")["id"]
    live.wait_state(jid, "running")
    grown = LIVE_SCENARIO.read_text().replace("domains: 1\n", "domains: 2\n", 1)
    r = live.client.put("/v1/portfolio", json={"scenario": grown, "source": "grown.yaml"}, headers=live.admin)
    assert r.status_code == 200, r.text
    p = live.client.get("/v1/portfolio", headers=research).json()
    assert p["version"] == 2 and {c["name"]: c["gpus"] for c in p["clusters"]} == {"local-a": 16, "local-b": 8}
    assert live.job(jid)["state"] == "running" and live.job(jid)["attempt"] == 1
    bad = live.client.put("/v1/portfolio", json={"scenario": "name: x\nclusters: 3\n"}, headers=live.admin)
    assert bad.status_code == 422 and "clusters" in bad.json()["error"]
    assert live.client.get("/v1/portfolio", headers=research).json()["version"] == 2
    # a portfolio without the job's cluster moves the job
    shrunk = LIVE_SCENARIO.read_text().replace("domains: 1\n", "domains: 0\n", 1)
    assert live.client.put("/v1/portfolio", json={"scenario": shrunk}, headers=live.admin).status_code == 200
    j = wait_for(lambda: (j := live.job(jid))["attempt"] == 2 and j["state"] == "running" and j, what="a move")
    assert [p["cluster"] for p in j["placements"]] == ["local-a", "local-b"]


def test_a_restarted_server_remembers_running_and_queued_work(db_url, tmp_path):
    fake = FakeBackend("local")
    app, _ = make_app(db_url, tmp_path, backends={"local": fake})
    with TestClient(app) as c:
        live = Live(c, {"local": fake})
        research = live.team("research")
        running = [live.submit(research, name=f"r{i}", gpus="H100:8", tp=8)["id"] for i in range(2)]
        for jid in running:
            live.wait_state(jid, "running")
        queued = live.submit(research, name="waits", gpus="H100:8", tp=8)["id"]
        token = live.tokens["research"]
    app2, _ = make_app(db_url, tmp_path, backends={"local": fake})  # same backend: the work kept running
    with TestClient(app2) as c:
        live = Live(c, {"local": fake}, tokens={"research": token})
        research = live.team("research")
        assert [live.job(j)["state"] for j in running] == ["running", "running"]
        assert live.job(queued)["state"] == "queued"
        fake.finish(running[1], 0)
        j = live.wait_state(queued, "running")
        assert j["attempt"] == 1 and len(fake.launches) == 3  # nothing started twice
        assert live.job(running[0])["state"] == "running"


def test_work_that_vanished_is_requeued(live):
    jid = live.submit(live.team("research"), name="v", gpus="H100:2", checkpoint_interval_s=30)["id"]
    live.wait_state(jid, "running")
    live.backends["local"].vanish(jid)
    j = wait_for(lambda: (j := live.job(jid))["attempt"] == 2 and j["state"] == "running" and j, what="requeue")
    assert j["placements"][0]["outcome"] == "lost"
    assert "vanished" in next(e["message"] for e in live.client.get(
        "/v1/events", params={"job": jid}, headers=live.admin).json() if e["kind"] == "requeued")


def test_migrations_build_the_same_schema_as_the_models(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from gpufleet.store import upgrade
    upgrade(db_url)
    eng = connect(db_url)
    with eng.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), T.Base.metadata)
    assert diff == []
    upgrade(db_url)  # running it again is a no-op


def test_health_and_metrics_report_the_queue(live):
    research = live.team("research")
    for i in range(3):
        live.submit(research, name=f"big{i}", gpus="H100:8", tp=8)
    wait_for(lambda: live.client.get("/health").json()["queued"] == 1, what="one job left waiting")
    text = live.client.get("/metrics").text
    assert "gpufleet_submissions_total 3.0" in text and "gpufleet_queued_jobs 1.0" in text
    assert "gpufleet_submit_to_place_seconds_count 2.0" in text


def test_a_stored_database_path_is_accepted(tmp_path):
    from gpufleet.store.db import normalize
    assert normalize(str(tmp_path / "x.db")) == f"sqlite:///{Path(tmp_path / 'x.db').resolve()}"
    assert normalize("postgresql://u:p@h/db").startswith("postgresql+psycopg://")


def test_the_dashboard_is_served_and_lists_newest_first(live):
    page = live.client.get("/")
    assert page.status_code == 200 and "gpufleet" in page.text and "/static/dashboard.js" in page.text
    assert "Authorization" in live.client.get("/static/dashboard.js").text   # the page reads the API with a token
    research = live.team("research")
    ids = [live.submit(research, name=f"n{i}")["id"] for i in range(3)]
    newest = live.client.get("/v1/jobs", params={"newest": True, "limit": 2}, headers=research).json()
    assert [j["id"] for j in newest] == ids[:0:-1]
    events = live.client.get("/v1/events", params={"newest": True, "limit": 1}, headers=research).json()
    assert len(events) == 1 and events[0]["id"] == max(
        e["id"] for e in live.client.get("/v1/events", headers=research).json())


def test_the_fast_submission_path_answers_exactly_as_the_route(db_url, tmp_path):
    """`gpufleet serve` puts a fast path in front of POST /v1/jobs; every answer must match the route's."""
    app, backends = make_app(db_url, tmp_path)
    fast = app.state.fast_submit.wrap(app)
    with TestClient(app) as plain:
        live = Live(plain, backends)
        research = live.team("research")
        fast_client = TestClient(fast)
        same = {"job": {"name": "a", "gpus": "H100:1", "command": "true"}, "key": "same"}
        made = fast_client.post("/v1/jobs", json=same, headers=research)
        again = plain.post("/v1/jobs", json=same, headers=research)
        assert (made.status_code, again.status_code) == (201, 200) and made.json()["id"] == again.json()["id"]
        cases = [
            ({"job": {"name": "b", "gpus": "H100:x", "command": "true"}}, research),
            ({"job": {"name": "c", "gpus": "H100:1", "command": "true", "team": "serving"}}, research),
            ({"job": {"name": "d", "gpus": "H100:1"}}, research),
            ({"job": {"name": "e", "gpus": "H100:1", "command": "true"}}, {"Authorization": "Bearer nope"}),
            ({"job": {"name": "f", "gpus": "H100:1", "command": "true"}}, {}),
            ({"job": {"name": "g", "gpus": "H100:1", "command": "true"}}, {**research, "Idempotency-Key": ""}),
        ]
        for body, headers in cases:
            via_fast = fast_client.post("/v1/jobs", json=body, headers=headers)
            via_route = plain.post("/v1/jobs", json=body, headers=headers)
            assert via_fast.status_code == via_route.status_code >= 400, body
            assert via_fast.json() == via_route.json()
        first = fast_client.post("/v1/jobs", json=same, headers=research).json()
        assert first["created"] is False and first["key"] == "same"
        created = fast_client.post("/v1/jobs", json={"job": {"name": "h", "gpus": "H100:1", "command": "true"}},
                                   headers=research)
        assert created.status_code == 201 and created.json()["created"] is True
        assert live.wait_state(created.json()["id"], "running")["team"] == "research"
        assert fast_client.get("/health").status_code == 200  # other routes pass through


def test_capacity_a_backend_reports_lost_is_marked_failed_and_its_work_moves(live):
    research = live.team("research")
    jid = live.submit(research, name="t", kind="training", gpus="H100:8", tp=8)["id"]
    assert live.wait_state(jid, "running")["placements"][0]["cluster"] == "local-a"
    live.backends["local"].lose("local-a", 0, "GPU fell off the bus")  # one NVLink domain reported gone
    j = wait_for(lambda: (j := live.job(jid))["attempt"] == 2 and j["state"] == "running" and j, what="a move")
    assert [p["cluster"] for p in j["placements"]] == ["local-a", "local-b"]
    caps = live.client.get("/v1/capacity", headers=live.admin).json()
    assert [(c["scope"], c["target"], c["domain"], c["reason"]) for c in caps] == [
        ("domain", "local-a", 0, "GPU fell off the bus")]
    lost = [e for e in live.client.get("/v1/events", headers=live.admin).json() if e["kind"] == "capacity_lost"]
    assert lost[0]["actor"] == "backend:local" and lost[0]["detail"]["jobs"] == [jid]
    p = live.client.get("/v1/portfolio", headers=research).json()
    assert {c["name"]: c["domains_down"] for c in p["clusters"]} == {"local-a": [0], "local-b": []}


def test_a_loss_the_portfolio_cannot_hold_is_logged_and_the_rest_of_the_poll_applies(live, caplog):
    research = live.team("research")
    jid = live.submit(research, name="t", gpus="H100:1")["id"]
    live.wait_state(jid, "running")
    fake = live.backends["local"]
    fake.lose("local-a", 999, "a rack the portfolio does not have")  # the backend and portfolio disagree
    fake.lose("nowhere", None, "a cluster the portfolio does not have")
    fake.finish(jid, 0)                                                # reported in the same poll
    live.wait_state(jid, "succeeded")
    assert live.client.get("/v1/capacity", headers=live.admin).json() == []
    wait_for(lambda: "cannot apply" in caplog.text and "not in the portfolio" in caplog.text,
             what="both refused losses logged")
    assert "reloading state" not in caplog.text  # no full reload from the database


def test_lost_work_reads_in_the_unit_that_shows_it():
    from gpufleet.server.ledger import gpu_hours_text as _gpu_hours
    assert _gpu_hours(0.0009) == "3 GPU-seconds"           # a one-second checkpoint's worth on 16 GPUs
    assert _gpu_hours(12.345) == "12.35 GPU-hours" and _gpu_hours(0) == "0.00 GPU-hours"
