"""The everyday verbs: `submit --dry-run` (the scheduler's decision, nothing stored), `queue`, `status`,
`jobs --follow`, shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from click.testing import CliRunner
from live_helpers import wait_for

from gpufleet.cli import ops
from gpufleet.cli.main import command
from gpufleet.files import parse_scenario
from gpufleet.server.routes.status import at_risk
from gpufleet.server.spend import Usage, spend

JOB = {"name": "probe", "kind": "batch", "gpus": "H100:8", "command": "true"}


def _engine_now(live) -> tuple:
    """What a dry run must leave as it was: every allocation, each domain's free GPUs, the queue."""
    c = live.client.app.state.control
    st = c.engine.state
    return (sorted((k, a.cluster, a.parts) for k, a in st.allocations.items()),
            [tuple(cs.domains.free) for cs in st.clusters], {t: n for t, n in st.team_used.items() if n},
            c.sched.queued)


def _stored(live) -> tuple:
    jobs = live.client.get("/v1/jobs", params={"limit": 1000}, headers=live.admin).json()
    events = live.client.get("/v1/events", params={"limit": 100_000}, headers=live.admin).json()
    return len(jobs), len(events)


def _dry(live, headers, **job):
    r = live.client.post("/v1/dry-run", json={"job": {**JOB, **job}}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_dry_run_answers_as_the_scheduler_would_and_changes_nothing(live):
    research = live.team("research")
    before, stored = _engine_now(live), _stored(live)
    doc = _dry(live, research)
    assert doc["would_place"] and doc["reason"] is None and not doc["preempts"]
    [p] = doc["placements"]
    assert p["cluster"] == "local-a" and p["gpus"] == 8 and p["provider"] == "site-a"   # the cheaper cluster
    assert {v["cluster"] for v in doc["explanation"]} == {"local-a", "local-b"}
    assert _engine_now(live) == before and _stored(live) == stored

    # Both clusters busy: the answer is the reason it would wait, with each cluster's verdict.
    busy = [live.submit(research, name=f"b{i}", gpus="H100:8", command="sleep 60", preemptible=True,
                        priority=5)["id"] for i in range(2)]
    for j in busy:
        live.wait_state(j, "running")
    serving = live.team("serving")
    before, stored = _engine_now(live), _stored(live)
    doc = _dry(live, research, name="more")
    assert not doc["would_place"] and not doc["permanent"] and doc["placements"] == []
    assert "quota" in doc["reason"] or "GPUs" in doc["reason"], doc["reason"]
    assert all(not v["feasible"] for v in doc["explanation"])

    # Higher-priority work of another team would preempt one of them: named to an admin, counted to a team.
    theirs = _dry(live, serving, name="urgent", priority=900)
    assert theirs["would_place"] and theirs["preempts"] == [] and theirs["preempts_other_teams"] == 1
    mine = _dry(live, live.admin, name="urgent", team="serving", priority=900)
    assert mine["would_place"] and len(mine["preempts"]) == 1 and mine["preempts"][0] in busy
    assert _engine_now(live) == before and _stored(live) == stored   # nobody was evicted
    assert all(live.job(j)["state"] == "running" for j in busy)


def test_a_dry_run_waits_behind_waiting_work_of_its_kind_and_names_what_never_runs(live):
    research = live.team("research")
    for i in range(2):
        live.wait_state(live.submit(research, name=f"b{i}", gpus="H100:8", command="sleep 60")["id"], "running")
    waiting = live.submit(live.admin, name="w", team="serving", gpus="H100:8", command="sleep 60")["id"]
    wait_for(lambda: live.job(waiting)["reason"], what="a reason for the waiting job")
    doc = _dry(live, live.team("serving"), name="same-kind")
    assert not doc["would_place"] and f"job {waiting}" in doc["reason"] and doc["waiting_ahead"] == 1
    never = _dry(live, research, name="b200", gpus="B200:8")
    assert not never["would_place"] and never["permanent"] and "never" in never["reason"]
    r = live.client.post("/v1/dry-run", json={"job": {**JOB, "team": "serving"}}, headers=research)
    assert r.status_code == 403                                   # a team asks only for its own work


def test_status_counts_clusters_queue_and_failures_and_keeps_money_to_admins(live):
    research = live.team("research")
    live.wait_state(live.submit(research, name="r", gpus="H100:4", command="sleep 60")["id"], "running")
    live.submit(live.admin, name="s", team="serving", gpus="H100:8", command="sleep 60")
    r = live.client.post("/v1/capacity", json={"scope": "cluster", "target": "local-b", "reason": "test"},
                         headers=live.admin)
    assert r.status_code == 200, r.text
    doc = wait_for(lambda: (d := live.client.get("/v1/status", headers=live.admin).json())
                   and d["providers"][1]["failed_gpus"] and d, what="the failure in the status")
    a, b = doc["providers"]
    assert (a["provider"], a["gpus"], a["used_gpus"] + a["free_gpus"], a["failed_gpus"]) == ("site-a", 8, 8, 0)
    assert (b["provider"], b["clusters_down"], b["failed_gpus"]) == ("site-b", 1, 8)
    assert doc["queue"]["running"]["jobs"] + doc["queue"]["placed"]["jobs"] >= 1
    assert doc["spend"] is not None and doc["commitments_at_risk"] == []   # no commitments here
    team = live.client.get("/v1/status", headers=research).json()
    assert team["team"] == "research" and team["spend"] is None and team["commitments_at_risk"] is None
    assert sum(team["queue"][s]["jobs"] for s in team["queue"]) == 1       # its own job, not serving's


def test_a_commitment_drawn_behind_its_schedule_is_at_risk_by_its_projected_shortfall():
    p = parse_scenario("""
name: c
start: 2026-01-01
end: 2028-01-01
providers: [{name: aws, kind: aws, regions: [us-east-1]}]
clusters:
  - {name: p5, provider: aws, region: us-east-1, gpu: H100, domain_size: 8, domains: 100, price_per_gpu_hour: 6.0}
contracts:
  - {name: big, kind: spend_commitment, provider: aws, clusters: [p5], start: 2026-01-01, end: 2028-01-01,
     commitment_usd: 10000000, price_per_gpu_hour: 3.0}
""", "c.yaml")
    t0 = 1767225600.0   # 2026-01-01
    ten_days = 10 * 86400.0
    bill = spend(p, [Usage("p5", 80, t0, None)], [], t0, t0 + ten_days)
    bill["since"] = t0
    [k] = at_risk(bill, t0 + ten_days)
    assert 0 < k["pace"] < 1 and k["drawn_usd"] == bill["contracts"][0]["usd"]
    assert abs(k["projected_shortfall_usd"] - 10e6 * (1 - k["pace"])) < 1e-6
    heavy = spend(p, [Usage("p5", 800, t0, None)], [], t0, t0 + ten_days)   # 800 GPUs draw ahead of schedule
    heavy["since"] = t0
    assert at_risk(heavy, t0 + ten_days) == []
    assert at_risk(bill, t0 + 3600) == []                                    # too early to judge


def test_queue_lists_waiting_work_in_the_order_it_is_tried_with_reasons():
    rows = [{"id": 1, "state": "running", "priority": 1, "submitted_at": 1.0, "started_at": 5.0, "placed_at": 4.0,
             "reason": None},
            {"id": 2, "state": "queued", "priority": 10, "submitted_at": 3.0, "started_at": None, "placed_at": None,
             "reason": "team quota"},
            {"id": 3, "state": "queued", "priority": 50, "submitted_at": 9.0, "started_at": None, "placed_at": None,
             "reason": None},
            {"id": 4, "state": "queued", "priority": 10, "submitted_at": 2.0, "started_at": None, "placed_at": None,
             "reason": "no free GPUs"}]
    got = ops.queue_order(rows)
    assert [(j["id"], j["position"]) for j in got] == [(3, 1), (4, 2), (2, 3), (1, None)]
    assert [j["reason"] for j in got] == ["not tried yet", "no free GPUs", "team quota", None]


class FakeJobs:
    """Answers the follow loop: job 1 starts, then Ctrl-C."""

    def __init__(self):
        self.calls = 0

    def call(self, method, path, params=None, **_):
        self.calls += 1
        if self.calls == 1:
            return [{"id": 1, "state": "running", "reason": None, "clusters": ["a"], "attempt": 1},
                    {"id": 2, "state": "queued", "reason": "no free GPUs", "clusters": [], "attempt": 0}]
        raise KeyboardInterrupt


def test_jobs_follow_json_prints_a_line_per_change_of_a_job(monkeypatch, capsys):
    monkeypatch.setattr(ops, "FOLLOW_EVERY_S", 0.0)
    first = [{"id": 1, "state": "queued", "reason": "no free GPUs", "clusters": [], "attempt": 0},
             {"id": 2, "state": "queued", "reason": "no free GPUs", "clusters": [], "attempt": 0}]
    ops._follow_jobs(FakeJobs(), {}, first, as_json=True)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["id"], x["state"]) for x in lines] == [(2, "queued"), (1, "queued"), (1, "running")]


def test_shell_completion_is_offered():
    r = CliRunner().invoke(command(), ["--show-completion", "bash"], prog_name="gpufleet")
    assert r.exit_code == 0 and "_GPUFLEET_COMPLETE" in r.output, r.output
    assert "--install-completion" in CliRunner().invoke(command(), ["--help"]).output


def test_the_cli_verbs_against_a_server(tmp_path):
    """The verbs as a user runs them: exit codes and --json from a real `gpufleet serve`."""
    from server_proc import ServerProcess
    job = tmp_path / "job.yaml"
    job.write_text("name: probe\nkind: batch\nteam: research\ngpus: H100:8\ncommand: sleep 60\n")
    srv = ServerProcess(f"sqlite:///{tmp_path / 'g.db'}", tmp_path).start()
    env = {**os.environ, "GPUFLEET_SERVER": srv.url, "GPUFLEET_TOKEN": "admin-secret-token"}

    def gf(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gpufleet", *args], env=env, capture_output=True, text=True)
    try:
        dry = gf("submit", str(job), "--dry-run")
        assert dry.returncode == 0 and "would place" in dry.stdout, dry.stdout + dry.stderr
        for i, team in enumerate(("research", "research", "serving")):   # both clusters busy, one waits
            f = tmp_path / f"j{i}.yaml"
            f.write_text(f"name: j{i}\nkind: batch\nteam: {team}\ngpus: H100:8\ncommand: sleep 60\n")
            assert gf("submit", str(f)).returncode == 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            q = json.loads(gf("queue", "--json").stdout)
            if any(j["state"] == "queued" and j["reason"] != "not tried yet" for j in q):
                break
            time.sleep(0.2)
        pending = [j for j in q if j["state"] == "queued"]
        assert pending and all(j["reason"] for j in pending) and pending[0]["position"] == 1
        dry = gf("submit", str(job), "--dry-run", "--json")
        assert dry.returncode == 3, dry.stdout + dry.stderr
        assert json.loads(dry.stdout)["would_place"] is False
        said = gf("submit", str(job), "--dry-run")
        assert said.returncode == 3 and "would not place" in said.stdout
        st = gf("status", "--json")
        assert st.returncode == 0 and json.loads(st.stdout)["queue"]["queued"]["jobs"] == len(pending)
        screen = gf("status")
        assert "site-a" in screen.stdout and "queue:" in screen.stdout and "commitments at risk" in screen.stdout
        assert len(json.loads(gf("jobs", "--json").stdout)) == len(q)      # the dry runs created nothing
    finally:
        srv.stop()


def test_plan_shows_its_steps_on_a_terminal_and_nothing_on_stdout(monkeypatch, tmp_path):
    import io

    from rich.console import Console

    from gpufleet.cli import plan as plan_cli
    screen = io.StringIO()
    monkeypatch.setattr(plan_cli, "err", Console(file=screen, force_terminal=True, width=100))
    out = tmp_path / "plan.json"
    r = CliRunner().invoke(command(), ["plan", "examples/small.yaml", "--what-if", "drop:aws", "--no-baselines",
                                       "--json", str(out)])
    assert r.exit_code == 0, r.output
    drawn = screen.getvalue()
    assert "solving the plan" in drawn and "what-if drop:aws" in drawn and "2/2" in drawn
    assert "solving the plan" not in r.output and json.loads(out.read_text())["what_if"][0]["spec"] == "drop:aws"
