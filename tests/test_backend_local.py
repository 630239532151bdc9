"""The local backend runs real processes: environment, logs, exit status, cancel, lost work, restarts."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from live_helpers import wait_for

from gpufleet.backends.base import BackendError, Launch, Status
from gpufleet.backends.local import LocalBackend


def a_launch(tmp_path: Path, command: str, job_id: int = 1, attempt: int = 1, parts=((0, 2),), **kw) -> Launch:
    base = dict(job_id=job_id, attempt=attempt, request_id=str(job_id), name=f"job{job_id}", team="research",
                command=command, env={"MY_SETTING": "on"}, cluster="local-a", provider="site-a", gpu_type="H100",
                parts=tuple(parts), group=2, domain_size=8, checkpoint_dir=str(tmp_path / "ckpt" / str(job_id)))
    base.update(kw)
    return Launch(**base)


def state(b: LocalBackend, h: dict) -> Status:
    """A handle's status; the backend leaves running work out of its answer."""
    return b.poll({1: h}).get(1, Status("running"))


def finished(b: LocalBackend, h: dict):
    return wait_for(lambda: (st := state(b, h)).state != "running" and st, what="the process to end")


def test_a_job_sees_its_gpus_and_settings_and_its_output_is_kept(tmp_path):
    b = LocalBackend(tmp_path / "local")
    h = b.start(a_launch(tmp_path, 'echo "cuda=$CUDA_VISIBLE_DEVICES tp=$GPUFLEET_TP job=$GPUFLEET_JOB_ID '
                                   'domains=$GPUFLEET_DOMAINS mine=$MY_SETTING"; echo to-stderr >&2',
                         parts=((1, 2), (3, 2))))
    st = finished(b, h)
    assert (st.state, st.exit_code) == ("succeeded", 0)
    out = b.logs(h)
    assert "cuda=8,9,24,25 tp=2 job=1 domains=1:2,3:2 mine=on" in out and "to-stderr" in out
    assert b.logs(h, tail=1) == "to-stderr\n"


def test_two_jobs_on_one_domain_get_different_slots(tmp_path):
    b = LocalBackend(tmp_path / "local")
    h1 = b.start(a_launch(tmp_path, "echo $CUDA_VISIBLE_DEVICES; sleep 5", job_id=1))
    h2 = b.start(a_launch(tmp_path, "echo $CUDA_VISIBLE_DEVICES", job_id=2))
    wait_for(lambda: b.logs(h1) and b.logs(h2), what="output")
    assert b.logs(h1).strip() == "0,1" and b.logs(h2).strip() == "2,3"
    b.cancel(h1)


def test_exit_status_is_reported(tmp_path):
    b = LocalBackend(tmp_path / "local")
    st = finished(b, b.start(a_launch(tmp_path, "exit 7")))
    assert (st.state, st.exit_code) == ("failed", 7)


def test_cancel_stops_the_whole_process_group(tmp_path):
    b = LocalBackend(tmp_path / "local")
    h = b.start(a_launch(tmp_path, "sleep 300 & echo $! > child.pid; wait"))
    child_pid_file = Path(h["dir"]) / "child.pid"
    wait_for(child_pid_file.exists, what="the child to start")
    child = int(child_pid_file.read_text())
    b.cancel(h)
    wait_for(lambda: not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()
             .rsplit(")", 1)[1].split()[0], what="the grandchild to die")
    assert state(b, h).state != "running"


def test_a_killed_process_group_is_lost_not_failed(tmp_path):
    b = LocalBackend(tmp_path / "local")
    h = b.start(a_launch(tmp_path, "sleep 300"))
    os.killpg(h["pid"], signal.SIGKILL)
    st = finished(b, h)
    assert st.state == "lost" and "without an exit status" in st.message


def test_a_new_backend_instance_follows_work_started_before_a_restart(tmp_path):
    first = LocalBackend(tmp_path / "local")
    h = first.start(a_launch(tmp_path, "sleep 0.5; echo done; exit 4"))
    again = LocalBackend(tmp_path / "local")  # a restarted server: only the stored handle is known
    assert state(again, h).state == "running"
    st = finished(again, h)
    assert (st.state, st.exit_code) == ("failed", 4) and "done" in again.logs(h)
    first.close()


def test_a_reused_pid_is_not_mistaken_for_the_job(tmp_path):
    b = LocalBackend(tmp_path / "local")
    h = b.start(a_launch(tmp_path, "sleep 300"))
    forged = {**h, "ticks": (h["ticks"] or 0) + 12345}  # same pid, another process start time
    assert state(LocalBackend(tmp_path / "local"), forged).state == "lost"
    b.cancel(h)


def test_checkpoints_survive_attempts(tmp_path):
    b = LocalBackend(tmp_path / "local")
    cmd = 'n=$(cat "$GPUFLEET_CHECKPOINT_DIR/step" 2>/dev/null || echo 0); echo $((n+1)) > "$GPUFLEET_CHECKPOINT_DIR/step"'
    finished(b, b.start(a_launch(tmp_path, cmd, attempt=1)))
    finished(b, b.start(a_launch(tmp_path, cmd, attempt=2)))
    assert (tmp_path / "ckpt" / "1" / "step").read_text().strip() == "2"


def test_an_empty_command_is_refused(tmp_path):
    with pytest.raises(BackendError, match="no command"):
        LocalBackend(tmp_path / "local").start(a_launch(tmp_path, "  "))


def test_server_secrets_do_not_reach_the_job(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUFLEET_ADMIN_TOKEN", "very-secret")
    monkeypatch.setenv("GPUFLEET_TOKEN", "also-secret")
    b = LocalBackend(tmp_path / "local")
    h = b.start(a_launch(tmp_path, "env"))
    finished(b, h)
    assert "very-secret" not in b.logs(h) and "also-secret" not in b.logs(h)
