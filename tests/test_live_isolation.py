"""What one server's state must never share: run directories with another database's jobs, its database with
a second live server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx
from live_helpers import ADMIN, checkpoint_of, wait_for
from server_proc import ServerProcess, free_port

# A job that resumes from its checkpoint, as training does: it says where it starts, then counts to 20.
RESUMING = ('d="$GPUFLEET_CHECKPOINT_DIR"; n=$(cat "$d/step" 2>/dev/null || echo 0); '
            'echo "resuming at step $n as $GPUFLEET_TEAM"; while [ "$n" -lt 20 ]; do n=$((n+1)); done; '
            'echo $n > "$d/step"; echo "finished at step $n"')


def _token(url: str, team: str) -> dict[str, str]:
    r = httpx.post(url + "/v1/tokens", json={"team": team}, headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _run_one(server: ServerProcess, team: str) -> tuple[dict, str]:
    auth = _token(server.url, team)
    r = httpx.post(server.url + "/v1/jobs", headers=auth, json={"job": {
        "name": "train", "kind": "training", "gpus": "H100:1", "command": RESUMING}})
    assert r.status_code in (200, 201), r.text
    jid = r.json()["id"]
    job = wait_for(lambda: (j := httpx.get(f"{server.url}/v1/jobs/{jid}", headers=auth).json())["state"]
                   in ("succeeded", "failed") and j, timeout=60, what="the job to end")
    return job, httpx.get(f"{server.url}/v1/jobs/{jid}/logs", headers=auth).text


def test_a_new_database_on_the_same_data_dir_shares_no_checkpoint_or_log(tmp_path):
    """Job 1 of a second database is not job 1 of the first: it starts from step 0 and its log is its own."""
    first = ServerProcess(f"sqlite:///{tmp_path / 'first.db'}", tmp_path).start()
    try:
        job, log = _run_one(first, "research")
    finally:
        first.stop()
    assert job["id"] == 1 and job["state"] == "succeeded"
    assert "resuming at step 0 as research" in log and "finished at step 20" in log
    assert (checkpoint_of(tmp_path, first.db_url, 1) / "step").read_text().strip() == "20"

    second = ServerProcess(f"sqlite:///{tmp_path / 'second.db'}", tmp_path).start()
    try:
        job, log = _run_one(second, "serving")
    finally:
        second.stop()
    assert job["id"] == 1 and job["state"] == "succeeded"
    assert "resuming at step 0 as serving" in log, log   # not the first database's checkpoint
    assert "research" not in log and log.count("finished at step 20") == 1  # not its log either
    assert checkpoint_of(tmp_path, first.db_url, 1) != checkpoint_of(tmp_path, second.db_url, 1)


def _serve(db_url: str, data_dir) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpufleet", "serve", "--db", db_url, "--port", str(free_port()),
                           "--data-dir", str(data_dir), "--backend", "fake"], capture_output=True, text=True,
                          env={**os.environ, "GPUFLEET_ADMIN_TOKEN": ADMIN}, timeout=60)


def test_a_second_server_on_a_held_database_exits_1_naming_the_holder(db_url, tmp_path):
    holder = ServerProcess(db_url, tmp_path, backend="fake").start()
    try:
        r = _serve(db_url, tmp_path)
        assert r.returncode == 1, r.stderr
        assert "another gpufleet server holds" in r.stderr and f"pid {holder.proc.pid}" in r.stderr, r.stderr
        assert f"host {socket.gethostname()}"[:20] in r.stderr and "since 20" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert httpx.get(holder.url + "/health").status_code == 200   # the holder runs on, untouched
    finally:
        holder.kill()                                                    # kill -9: no chance to let go
    again = ServerProcess(db_url, tmp_path, backend="fake").start()     # a dead holder blocks nothing
    try:
        auth = {"Authorization": f"Bearer {ADMIN}"}
        assert httpx.get(again.url + "/v1/whoami", headers=auth).json()["admin"] is True
    finally:
        again.stop()
    after_clean_stop = ServerProcess(db_url, tmp_path, backend="fake").start()  # nor does a stopped one
    after_clean_stop.stop()
