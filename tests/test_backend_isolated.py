"""A backend in a child process: calls and errors cross unchanged, and a child that hangs or ends its own
process (as Ray's driver does when its cluster vanishes) makes the call BackendUnavailable within its
deadline and is replaced by a fresh child on the next call; the server's process is never taken down."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gpufleet.backends.base import BackendError, BackendUnavailable, Launch, Loss, Status
from gpufleet.backends.isolated import IsolatedBackend


def launch(rid: str = "train") -> Launch:
    return Launch(job_id=1, attempt=1, request_id=rid, name=rid, team="research", command="true", env={},
                  cluster="toy-cluster", provider="toy", gpu_type="H100", parts=((0, 8), (1, 8)), group=8,
                  domain_size=8, checkpoint_dir="/tmp/ckpt")


@pytest.fixture
def toy(tmp_path):
    b = IsolatedBackend("toy", "isolation_toys", "Toy", {"name": "toy", "dir": str(tmp_path)},
                        call_timeout_s=2.0, start_timeout_s=2.0, boot_timeout_s=60.0, respawn_after_s=1.0)
    yield b, tmp_path
    b.close()


def children(tmp_path: Path) -> set[int]:
    return {int(p.name) for p in (tmp_path / "pids").iterdir()}


def test_calls_results_and_state_cross_the_process_boundary(toy):
    b, tmp = toy
    h = b.start(launch("a"))
    b.start(launch("b"))
    assert h["gpus"] == 16 and h["pid"] != os.getpid()       # it ran in the child
    assert b.poll({7: h}) == {7: Status("succeeded", 0, f"ran in {h['pid']}")}
    assert b.losses() == [Loss("toy-cluster", 3, "toy node down")]
    assert b.logs(h, 5) == "logs of a (tail 5) seen by 2 starts in this process"  # one child keeps its state
    b.close()
    assert (tmp / "closed").read_text() == str(h["pid"])     # closed cleanly, not killed


@pytest.mark.parametrize("mode, error, text", [("refuse", BackendError, "the toy refuses"),
                                               ("gone", BackendUnavailable, "the toy cluster is gone"),
                                               ("crash", BackendError, "KeyError")])
def test_errors_in_the_child_are_raised_here_and_the_child_lives_on(toy, mode, error, text):
    b, tmp = toy
    b.losses()
    (tmp / "mode").write_text(mode)
    with pytest.raises(error, match=text) as e:
        b.poll({1: {"id": "x"}})
    assert type(e.value) is error
    (tmp / "mode").unlink()
    assert b.losses() and len(children(tmp)) == 1 and b.restarts == 0


@pytest.mark.parametrize("mode", ["hang", "exit"])
def test_a_child_that_hangs_or_ends_is_replaced_and_the_call_is_unavailable(toy, mode):
    b, tmp = toy
    first = b.start(launch())["pid"]
    (tmp / "mode").write_text(mode)
    t = time.monotonic()
    with pytest.raises(BackendUnavailable, match="did not answer within 2s" if mode == "hang" else "ended"):
        b.poll({1: {"id": "train"}})
    assert time.monotonic() - t < 30  # bounded by the deadline, not by the misbehaving library
    with pytest.raises(OSError):
        os.kill(first, 0)             # the old child is gone, not left running
    (tmp / "mode").unlink()
    with pytest.raises(BackendUnavailable, match="a new process starts"):
        b.losses()                    # right after a loss: no new child per call (a poll loop would spin)
    time.sleep(1.0)
    again = b.start(launch())["pid"]  # then a fresh child answers
    assert again != first and children(tmp) == {first, again} and b.restarts == 1


def test_a_call_does_not_wait_behind_another_past_its_deadline_and_close_is_final(toy):
    import threading
    b, tmp = toy
    b.losses()
    (tmp / "mode").write_text("hang")
    slow = threading.Thread(target=lambda: pytest.raises(BackendUnavailable, b.start, launch()))
    slow.start()                      # holds the child for its 2 s deadline
    time.sleep(0.3)
    b.cancel_timeout_s = 0.5
    with pytest.raises(BackendUnavailable, match="busy with another call"):
        b.cancel({"id": "x"})         # waits at most its own deadline for the child
    slow.join()
    (tmp / "mode").unlink()
    b.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        b.losses()                    # no new child after close


def test_a_backend_that_cannot_be_built_reports_why_each_time(tmp_path):
    b = IsolatedBackend("toy", "isolation_toys", "Toy", {"name": "toy", "dir": str(tmp_path), "fail_build": True},
                        boot_timeout_s=60.0)
    for _ in range(2):
        with pytest.raises(BackendError, match="cannot reach the toy cluster's API"):
            b.losses()
    b.close()


def test_ray_backends_are_isolated_and_checked_when_named(tmp_path):
    pytest.importorskip("ray")
    from gpufleet.backends.registry import make_backend
    b = make_backend("ray-a", tmp_path, kind="ray", address="127.0.0.1:9", pg_timeout_s=5)
    assert isinstance(b, IsolatedBackend) and b.name == "ray-a" and b.start_timeout_s == 5 + 120 + 30
    with pytest.raises(BackendUnavailable, match="no Ray cluster answers at 127.0.0.1:9"):
        b.losses()                    # nothing listens there: refused in the child, reported here
    b.close()
    with pytest.raises(BackendError, match="unexpected keyword argument 'adress'"):
        make_backend("ray-b", tmp_path, kind="ray", adress="typo:1")
    assert not isinstance(make_backend("ray-c", tmp_path, kind="ray", isolate=False), IsolatedBackend)
