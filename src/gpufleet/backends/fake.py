"""An in-memory backend for tests and benchmarks: work runs for a set time, failures are injected."""

from __future__ import annotations

from typing import Any, Callable

from .base import BackendUnavailable, Launch, Loss, Status


class FakeBackend:
    """Each start runs for `run_s` seconds of the given clock (forever if None), then succeeds.

    Tests steer it: `finish(job_id, code)`, `vanish(job_id)` (the process group died), `lose(cluster)`,
    `kill()` (the whole backend is unreachable).
    """

    def __init__(self, name: str = "fake", clock: Callable[[], float] | None = None, run_s: float | None = None):
        import time
        self.name = name
        self.clock = clock or time.monotonic
        self.run_s = run_s
        self.running: dict[str, dict[str, Any]] = {}   # handle id -> record
        self.outcome: dict[str, Status] = {}
        self.launches: list[Launch] = []
        self.cancelled: list[str] = []
        self._losses: list[Loss] = []
        self.dead = False
        self._n = 0

    def _check(self) -> None:
        if self.dead:
            raise BackendUnavailable(f"backend {self.name} is not answering")

    def start(self, launch: Launch) -> dict[str, Any]:
        self._check()
        self._n += 1
        hid = f"{self.name}-{self._n}"
        self.running[hid] = {"launch": launch, "at": self.clock()}
        self.launches.append(launch)
        return {"id": hid, "cluster": launch.cluster}

    def poll(self, handles: dict[int, dict[str, Any]]) -> dict[int, Status]:
        """Only what is no longer running (finished, failed, unknown)."""
        self._check()
        out: dict[int, Status] = {}
        now = self.clock()
        running, outcome = self.running, self.outcome
        for pid, h in handles.items():
            hid = h["id"]
            st = outcome.get(hid)
            if st is not None:
                out[pid] = st
                continue
            rec = running.get(hid)
            if rec is None:
                out[pid] = Status("lost", message="unknown to the backend")
            elif self.run_s is not None and now - rec["at"] >= self.run_s:
                out[pid] = outcome.setdefault(hid, Status("succeeded", 0))
        return out

    def cancel(self, handle: dict[str, Any]) -> None:
        self._check()
        self.cancelled.append(handle["id"])
        self.outcome.setdefault(handle["id"], Status("failed", None, "cancelled"))
        self.running.pop(handle["id"], None)

    def logs(self, handle: dict[str, Any], tail: int | None = None) -> str:
        self._check()
        rec = self.running.get(handle["id"])
        return f"[fake] {rec['launch'].command}\n" if rec else ""

    def losses(self) -> list[Loss]:
        self._check()
        out, self._losses = self._losses, []
        return out

    def close(self) -> None:
        pass

    # -- test controls ------------------------------------------------------------------------------
    def _handle_of(self, job_id: int) -> str:
        for hid, rec in reversed(list(self.running.items())):
            if rec["launch"].job_id == job_id:
                return hid
        raise KeyError(f"job {job_id} is not running on {self.name}")

    def finish(self, job_id: int, code: int = 0) -> None:
        hid = self._handle_of(job_id)
        self.outcome[hid] = Status("succeeded" if code == 0 else "failed", code)
        self.running.pop(hid, None)

    def vanish(self, job_id: int) -> None:
        self.running.pop(self._handle_of(job_id), None)

    def lose(self, cluster: str, domain: int | None = None, reason: str = "injected") -> None:
        self._losses.append(Loss(cluster, domain, reason))

    def kill(self) -> None:
        self.dead = True

    def revive(self) -> None:
        self.dead = False
