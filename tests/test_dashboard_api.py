"""What the dashboard reads: the fleet over time (sampled on change, thinned, down-sampled, a team's series
its own), the NVLink domains and provider shares now, spend per team, plan and simulation pages."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from live_helpers import LIVE_SCENARIO, ROOT, wait_for
from gpufleet.server import history
from gpufleet.store import tables as T

PLAN_SCENARIO = LIVE_SCENARIO.read_text() + """
workloads:
  - {kind: training, name: pretrain, team: research, gpus: 8, gpu_types: {H100: 1.0}, work_gpu_hours: 5000,
     start: 2026-01-01}
"""


def _sampled(live) -> None:
    """Sample on every turn from now on (the server's default is at most every 5 s)."""
    live.client.app.state.control.samples.every_s = 0.0


def _series(doc: dict, kind: str, name: str) -> dict:
    return next(s for s in doc[kind] if s["name"] == name)


def test_history_follows_the_fleet_and_a_team_sees_only_its_own_series(live):
    _sampled(live)
    a, b = live.team("research"), live.team("serving")
    job = live.submit(a, name="hold", gpus="H100:4", command="sleep 30")
    live.wait_state(job["id"], "running")
    live.submit(b, name="small", gpus="H100:1", command="sleep 30")
    doc = wait_for(lambda: (d := live.client.get("/v1/history", params={"range": "1h", "points": 20},
                                                 headers=live.admin).json())
                   and any(t["name"] == "serving" for t in d["teams"]) and d, what="both teams sampled")
    assert len(doc["t"]) == 20 and doc["t"][-1] > doc["t"][0]
    research = _series(doc, "teams", "research")
    assert research["used"][-1] == 4 and research["running"][-1] == 1
    assert research["used"][0] is None          # the server started before the team had work: no value yet
    clusters = doc["clusters"]
    assert {c["name"] for c in clusters} == {"local-a", "local-b"}
    assert sum(c["used"][-1] for c in clusters) == 5
    assert all(c["gpus"][-1] == 8 and c["failed"][-1] == 0 for c in clusters)

    seen = live.client.get("/v1/history", params={"range": "1h"}, headers=b).json()
    assert [t["name"] for t in seen["teams"]] == ["serving"]
    assert {c["name"] for c in seen["clusters"]} == {"local-a", "local-b"}   # the portfolio's, as /v1/portfolio
    assert live.client.get("/v1/history", params={"range": "7 days"}, headers=b).status_code == 422
    assert live.client.get("/v1/history").status_code == 401


def test_failed_capacity_shows_in_the_series_and_the_domain_map(live):
    _sampled(live)
    r = live.client.post("/v1/capacity", json={"scope": "cluster", "target": "local-b", "reason": "power"},
                         headers=live.admin)
    assert r.status_code == 200, r.text
    doc = wait_for(lambda: (d := live.client.get("/v1/history", params={"range": "30m"}, headers=live.admin).json())
                   and _series(d, "clusters", "local-b")["failed"][-1] == 8 and d, what="the failure sampled")
    assert _series(doc, "clusters", "local-a")["failed"][-1] == 0
    fleet = live.client.get("/v1/fleet", headers=live.admin).json()
    maps = {d["cluster"]: d for d in fleet["domains"]}
    assert maps["local-b"]["up"] is False and maps["local-a"]["up"] is True
    assert maps["local-a"]["usable"] == 8 and len(maps["local-a"]["free"]) == 1


def test_shares_and_spend_per_team_are_an_admins(live):
    a = live.team("research")
    job = live.submit(a, name="hold", gpus="H100:2", command="sleep 30")
    live.wait_state(job["id"], "running")
    fleet = live.client.get("/v1/fleet", headers=live.admin).json()
    assert sum(fleet["shares"]["batch"].values()) == 2
    assert live.client.get("/v1/fleet", headers=a).json()["shares"] is None
    bill = wait_for(lambda: (s := live.client.get("/v1/spend", headers=live.admin).json())
                    and s["teams"] and s["teams"][0]["gpu_hours"] > 0 and s, what="spend per team")
    assert [t["team"] for t in bill["teams"]] == ["research"]
    assert bill["teams"][0]["usd"] > 0
    assert abs(bill["teams"][0]["usd"] - bill["usage_usd"]) <= 1e-6 * max(1.0, bill["usage_usd"])  # the only team


def test_sampler_writes_only_what_changed_and_thinning_keeps_the_last_per_window(live):
    control = live.client.app.state.control
    db = live.client.app.state.db
    sampler = history.Sampler(every_s=0.0)
    with Session(db) as s, s.begin():
        first = sampler.record(s, control, 1000.0)
        again = sampler.record(s, control, 1001.0)
    assert first >= 2 and again == 0
    with Session(db) as s, s.begin():
        s.execute(T.Sample.__table__.delete())
        s.add_all([T.Sample(at=t, kind="team", name="x", used=u) for t, u in [(0, 1), (100, 2), (599, 3), (600, 4),
                                                                              (1300, 5), (5000, 6)]])
    with Session(db) as s, s.begin():
        history.thin(s, before=2000.0, every_s=600.0)
    with Session(db) as s:
        kept = [(r.at, r.used) for r in s.scalars(select(T.Sample).order_by(T.Sample.at))]
    assert kept == [(599, 3), (600, 4), (1300, 5), (5000, 6)]
    with Session(db) as s:
        doc = history.read(s, history.Window(550.0, 1350.0, 5), None)
    assert doc["t"] == [550.0, 750.0, 950.0, 1150.0, 1350.0]
    assert _series(doc, "teams", "x")["used"] == [None, 4, 4, 4, 5]   # 599 is after 550: not in force yet
    with Session(db) as s:
        assert history.read(s, history.Window(550.0, 1350.0, 5), {"y"})["teams"] == []
        assert s.scalar(select(func.count()).select_from(T.Sample)) == 4


def test_plan_pages_are_the_plan_report(live):
    assert live.client.put("/v1/portfolio", json={"scenario": PLAN_SCENARIO}, headers=live.admin).status_code == 200
    made = live.client.post("/v1/plans", headers=live.admin).json()
    page = live.client.get(f"/v1/plans/{made['id']}/report", headers=live.admin)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Capacity vs plan" in page.text and "Plotly.newPlot" in page.text
    assert live.client.get(f"/v1/plans/{made['id']}/report", headers=live.team("research")).status_code == 403
    assert live.client.get("/v1/plans/999/report", headers=live.admin).status_code == 404


def _simulation_doc(tmp_path) -> dict:
    out = tmp_path / "run.json"
    subprocess.run([sys.executable, "-m", "gpufleet", "simulate", str(ROOT / "examples" / "small.yaml"),
                    "--until", "2026-01-15", "--json", str(out)], check=True, capture_output=True, cwd=tmp_path)
    return json.loads(out.read_text())


def test_simulation_reports_are_uploaded_and_shown_to_their_team_only(live, tmp_path):
    doc = _simulation_doc(tmp_path)
    a, b = live.team("research"), live.team("serving")
    r = live.client.post("/v1/reports", json={"title": "small, two weeks", "doc": doc}, headers=a)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["runs"] == 1 and r.json()["scenario"] == doc["scenario"]
    assert [x["id"] for x in live.client.get("/v1/reports", headers=a).json()] == [rid]
    assert live.client.get("/v1/reports", headers=b).json() == []
    assert [x["id"] for x in live.client.get("/v1/reports", headers=live.admin).json()] == [rid]
    page = live.client.get(f"/v1/reports/{rid}/report", headers=a)
    assert page.status_code == 200 and "small, two weeks" in page.text and "Plotly.newPlot" in page.text
    assert live.client.get(f"/v1/reports/{rid}/report", headers=b).status_code == 404
    bad = live.client.post("/v1/reports", json={"title": "x", "doc": {"runs": [{"nothing": 1}]}}, headers=a)
    assert bad.status_code == 422 and "gpufleet simulate --json" in bad.json()["error"]
    assert len(live.client.get("/v1/reports", headers=live.admin).json()) == 1   # the refused one is not kept


def test_static_files_need_no_token_and_stay_in_their_folder(live):
    js = live.client.get("/static/plotly.js")
    assert js.status_code == 200 and "plotly" in js.text[:2000].lower()
    assert live.client.get("/static/dashboard.js").status_code == 200
    assert live.client.get("/static/dashboard.css").status_code == 200
    assert live.client.get("/static/..%2Fdashboard.html").status_code == 404
    assert live.client.get("/static/nothing.js").status_code == 404
    home = live.client.get("/")
    assert home.status_code == 200 and "/static/dashboard.js" in home.text


def test_history_read_gives_the_value_in_force_at_each_point(live):
    """Against a brute-force reading of every row: the database's per-point reduction loses nothing."""
    import random
    rng = random.Random(7)
    db = live.client.app.state.db
    rows = [(round(rng.uniform(0, 10_000), 3), rng.choice("abc"), rng.randint(0, 100)) for _ in range(600)]
    rows += [(3000.0, "a", 555), (5000.0, "b", 666)]          # exactly on a point: in force there
    rows.sort(key=lambda r: r[0])                               # the sampler writes in time order
    with Session(db) as s, s.begin():
        s.execute(T.Sample.__table__.delete())
        s.add_all([T.Sample(at=at, kind="team", name=n, used=u) for at, n, u in rows])
    w = history.Window(1000.0, 9000.0, 5)                       # points at 1000, 3000, 5000, 7000, 9000
    with Session(db) as s:
        doc = history.read(s, w, None)
    for series in doc["teams"]:
        mine = sorted(((at, i, u) for i, (at, n, u) in enumerate(rows) if n == series["name"]))
        expect = [next((u for at, _, u in reversed(mine) if at <= t), None) for t in doc["t"]]
        assert series["used"] == expect, series["name"]
    with Session(db) as s:
        assert [t["name"] for t in history.read(s, w, {"b"})["teams"]] == ["b"]


def test_report_upload_from_the_cli_shows_on_the_server(tmp_path):
    from server_proc import ServerProcess
    doc = tmp_path / "run.json"
    doc.write_text(json.dumps(_simulation_doc(tmp_path)))
    (tmp_path / "not.json").write_text("{nope")
    srv = ServerProcess(f"sqlite:///{tmp_path / 'g.db'}", tmp_path).start()
    try:
        env = {**__import__("os").environ, "GPUFLEET_SERVER": srv.url, "GPUFLEET_TOKEN": "admin-secret-token"}
        run = [sys.executable, "-m", "gpufleet", "report"]
        up = subprocess.run(run + ["upload", str(doc), "--title", "two weeks", "--json"], env=env,
                            capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["title"] == "two weeks"
        listed = subprocess.run(run + ["list", "--json"], env=env, capture_output=True, text=True)
        assert [r["title"] for r in json.loads(listed.stdout)] == ["two weeks"]
        bad = subprocess.run(run + ["upload", str(tmp_path / "not.json")], env=env, capture_output=True, text=True)
        assert bad.returncode == 2 and "not JSON" in bad.stderr
    finally:
        srv.stop()
