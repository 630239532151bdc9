"""Kill the server with SIGKILL under load and restart it: nothing acknowledged is lost or doubled, running
work is not forgotten, the queue resumes. Also: a backend that dies mid-job; the client verbs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from live_helpers import ADMIN, checkpoint_of, wait_for
from server_proc import ServerProcess
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gpufleet.store import connect
from gpufleet.store import tables as T

SUBMISSIONS = 1000
CLIENTS = 8


def team_token(url: str, team: str) -> str:
    r = httpx.post(url + "/v1/tokens", json={"team": team}, headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def submit_all(url: str, token: str, keys: list[str], acked: dict[str, int], stop: threading.Event) -> None:
    """One client: submit each key until acknowledged or the server is gone (then stop)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        for k in keys:
            if stop.is_set():
                return
            try:
                r = c.post("/v1/jobs", json={"job": {"name": f"job-{k}", "kind": "batch", "gpus": "H100:1",
                                                     "command": "true"}, "key": k})
            except httpx.HTTPError:
                stop.set()
                return
            if r.status_code in (200, 201):
                acked[k] = r.json()["id"]


def run_clients(url: str, token: str, keys: list[str], acked: dict[str, int], stop: threading.Event) -> list:
    chunks = [keys[i::CLIENTS] for i in range(CLIENTS)]
    threads = [threading.Thread(target=submit_all, args=(url, token, ch, acked, stop)) for ch in chunks]
    for t in threads:
        t.start()
    return threads


def test_sigkill_under_load_loses_nothing_acknowledged(db_url, tmp_path):
    server = ServerProcess(db_url, tmp_path).start()
    try:
        token = team_token(server.url, "research")
        auth = {"Authorization": f"Bearer {token}"}
        # two jobs that are running when the server dies
        long = [httpx.post(server.url + "/v1/jobs", headers=auth, json={"job": {
            "name": f"long{i}", "kind": "batch", "gpus": "H100:1", "command": "sleep 3; echo finished"}}).json()["id"]
            for i in range(2)]
        wait_for(lambda: all(httpx.get(f"{server.url}/v1/jobs/{j}", headers=auth).json()["state"] == "running"
                             for j in long), what="the long jobs to run")
        keys = [f"k{i:04d}" for i in range(SUBMISSIONS)]
        acked: dict[str, int] = {}
        stop = threading.Event()
        threads = run_clients(server.url, token, keys, acked, stop)
        wait_for(lambda: len(acked) >= SUBMISSIONS // 3, timeout=120, what="a third acknowledged")
        server.kill()
        stop.set()
        for t in threads:
            t.join()
        before = dict(acked)
        assert 0 < len(before) < SUBMISSIONS

        server.start()  # same database, same data dir: a restart
        retry: dict[str, int] = {}
        threads = run_clients(server.url, token, keys, retry, threading.Event())  # clients retry everything
        for t in threads:
            t.join()
        assert len(retry) == SUBMISSIONS
        assert all(retry[k] == before[k] for k in before)  # an acknowledged job is the same job
        with Session(connect(db_url)) as s:
            n = s.scalar(select(func.count()).select_from(T.Job).where(T.Job.key.is_not(None)))
            distinct = s.scalar(select(func.count(func.distinct(T.Job.key))))
        assert n == distinct == SUBMISSIONS  # exactly once each

        def all_done() -> bool:
            jobs = httpx.get(server.url + "/v1/jobs", headers=auth, params={"limit": 5000}).json()
            return len(jobs) == SUBMISSIONS + 2 and all(j["state"] == "succeeded" for j in jobs)
        wait_for(all_done, timeout=240, what="every job to finish after the restart")
        for j in long:  # running work outlived the server and was followed to its end, not restarted
            job = httpx.get(f"{server.url}/v1/jobs/{j}", headers=auth).json()
            history = httpx.get(f"{server.url}/v1/events", headers=auth, params={"job": j}).json()
            assert job["attempt"] == 1 and len(job["placements"]) == 1, [e["message"] for e in history]
            assert "finished" in httpx.get(f"{server.url}/v1/jobs/{j}/logs", headers=auth).text
    finally:
        server.stop()


def test_a_backend_that_dies_mid_job_the_job_finishes_elsewhere(tmp_path):
    """Cluster local-a's machine dies (its processes are killed and it is marked failed): the training
    job resumes on local-b from its last checkpoint."""
    server = ServerProcess(f"sqlite:///{tmp_path / 'g.db'}", tmp_path).start()
    try:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        auth = {"Authorization": f"Bearer {team_token(server.url, 'research')}"}
        cmd = ('d="$GPUFLEET_CHECKPOINT_DIR"; n=$(cat "$d/step" 2>/dev/null || echo 0); '
               'echo "resume at $n on $GPUFLEET_CLUSTER"; while [ "$n" -lt 30 ]; do n=$((n+1)); '
               'echo $n > "$d/step.tmp" && mv "$d/step.tmp" "$d/step"; sleep 0.1; done; echo "done at $n"')
        jid = httpx.post(server.url + "/v1/jobs", headers=auth, json={"job": {
            "name": "train", "kind": "training", "gpus": "H100:8", "tp": 8, "command": cmd,
            "checkpoint_interval_s": 1}}).json()["id"]
        job = wait_for(lambda: (j := httpx.get(f"{server.url}/v1/jobs/{jid}", headers=auth).json())["state"]
                       == "running" and j, what="running")
        ckpt = checkpoint_of(tmp_path, server.db_url, jid) / "step"
        wait_for(lambda: ckpt.exists() and int(ckpt.read_text() or 0) >= 5, what="some progress")
        pid = job["placements"][0]["id"]
        with Session(connect(server.db_url)) as s:
            handle = s.get(T.Placement, pid).handle
        os.killpg(handle["pid"], 9)  # the machine under local-a dies ...
        httpx.post(server.url + "/v1/capacity", headers=admin,
                   json={"scope": "cluster", "target": "local-a", "reason": "host down"})  # ... and is marked so
        done = wait_for(lambda: (j := httpx.get(f"{server.url}/v1/jobs/{jid}", headers=auth).json())["state"]
                        in ("succeeded", "failed") and j, timeout=60, what="the job to end")
        assert done["state"] == "succeeded" and done["attempt"] >= 2
        assert done["placements"][-1]["cluster"] == "local-b" and done["placements"][0]["outcome"] == "lost"
        assert done["lost_gpu_hours"] >= 0
        out = httpx.get(f"{server.url}/v1/jobs/{jid}/logs", headers=auth).text
        resumed = int(out.split("resume at ")[1].split()[0])
        assert resumed >= 5 and "on local-b" in out and "done at 30" in out  # from its checkpoint, not from 0
    finally:
        server.stop()


def gpufleet(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpufleet", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_client_verbs_against_a_real_server(tmp_path):
    server = ServerProcess(f"sqlite:///{tmp_path / 'g.db'}", tmp_path).start()
    try:
        base = {"GPUFLEET_SERVER": server.url}
        r = gpufleet("token", "create", "--team", "research", "--json", env={**base, "GPUFLEET_TOKEN": ADMIN})
        assert r.returncode == 0, r.stderr
        env = {**base, "GPUFLEET_TOKEN": json.loads(r.stdout)["token"]}
        job = tmp_path / "job.yaml"
        job.write_text("name: hello\nkind: batch\ngpus: H100:2\ncommand: echo hello from $GPUFLEET_CLUSTER\n")
        r = gpufleet("submit", str(job), "--key", "once", "--json", env=env)
        assert r.returncode == 0 and json.loads(r.stdout)["created"] is True
        jid = json.loads(r.stdout)["id"]
        r = gpufleet("submit", str(job), "--key", "once", "--json", env=env)
        assert json.loads(r.stdout) == {"id": jid, "created": False, "key": "once"}
        wait_for(lambda: json.loads(gpufleet("job", str(jid), "--json", env=env).stdout)["state"] == "succeeded",
                 what="the job to finish")
        assert json.loads(gpufleet("jobs", "--json", env=env).stdout) == []   # active work only, by default
        listed = json.loads(gpufleet("jobs", "--all", "--json", env=env).stdout)
        assert [(j["id"], j["key"], j["state"]) for j in listed] == [(jid, "once", "succeeded")]
        assert gpufleet("logs", str(jid), env=env).stdout == "hello from local-a\n"
        kinds = [e["kind"] for e in json.loads(gpufleet("events", "--job", str(jid), "--json", env=env).stdout)]
        assert kinds == ["succeeded", "started", "placed", "submitted"]          # newest first
        assert json.loads(gpufleet("cancel", str(jid), "--json", env=env).stdout)["state"] == "succeeded"
        admin = {**base, "GPUFLEET_TOKEN": ADMIN}
        bill = json.loads(gpufleet("spend", "--json", env=admin).stdout)
        (pl,) = json.loads(gpufleet("job", str(jid), "--json", env=env).stdout)["placements"]
        hours = (pl["released_at"] - pl["placed_at"]) * 2 / 3600
        assert bill["clusters"] == [{"cluster": "local-a", "provider": "site-a", "gpu_hours": pytest.approx(hours)}]
        assert bill["total_usd"] == pytest.approx(hours * 2.0) and hours > 0  # site-a on demand at $2
        r = gpufleet("spend", env=admin)
        assert r.returncode == 0 and "site-a-od" in r.stdout
        assert gpufleet("spend", env=env).returncode == 4  # a team token does not see the bill
        r = gpufleet("capacity", "blocks", "local", "--instance-type", "p5.48xlarge", env=admin)
        assert r.returncode == 2 and "does not sell capacity blocks" in r.stderr
        # exit codes: refused 4, bad input 2, unreachable 1, unknown job 1
        assert gpufleet("jobs", env={**base, "GPUFLEET_TOKEN": "wrong"}).returncode == 4
        assert gpufleet("token", "create", "--team", "research", env=env).returncode == 4  # not admin
        bad = tmp_path / "bad.yaml"
        bad.write_text("name: x\ngpus: H100:two\ncommand: true\n")
        r = gpufleet("submit", str(bad), env=env)
        assert r.returncode == 2 and "bad.yaml:2" in r.stderr
        r = gpufleet("jobs", env={**env, "GPUFLEET_SERVER": "http://127.0.0.1:9"})
        assert r.returncode == 1 and "cannot reach the gpufleet server" in r.stderr
        assert gpufleet("job", "999", env=env).returncode == 1
        assert "Traceback" not in r.stderr
    finally:
        server.stop()


def test_serve_rejects_a_bad_scenario_cleanly(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nclusters: nope\n")
    r = gpufleet("serve", "--scenario", str(bad), "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert r.returncode == 2 and "bad.yaml" in r.stderr and "Traceback" not in r.stderr
    assert not Path(tmp_path / "x.db").exists()  # nothing was created for a rejected start
