"""An in-memory backend for tests and benchmarks: work runs for a set time, failures are injected."""

from __future__ import annotations

import heapq
from typing import Any, Callable

from .base import BackendUnavailable, Launch, Loss, Status


class FakeBackend:
    """Each start runs for `run_s` seconds of the given clock (forever if None), or for what `run_for(launch)`
    says when given (None: forever), then succeeds.

    Tests steer it: `finish(job_id, code)`, `vanish(job_id)` (the process group died), `lose(cluster)`,
    `kill()` (the whole backend is unreachable).
    """

    def __init__(self, name: str = "fake", clock: Callable[[], float] | None = None, run_s: float | None = None,
                 run_for: Callable[[Launch], float | None] | None = None):
        import time
        self.name = name
        self.clock = clock or time.monotonic
        self.run_s = run_s
        self.run_for = run_for
        self.running: dict[str, dict[str, Any]] = {}   # handle id -> record
        self.outcome: dict[str, Status] = {}
        self.launches: list[Launch] = []
        self.cancelled: list[str] = []
        self._losses: list[Loss] = []
        self.dead = False
        self._n = 0
        self._pids: set[int] = set()            # placement ids seen in the last poll
        self._pid_of: dict[str, int] = {}       # handle id -> placement id
        self._changed: list[str] = []           # handle ids with an outcome not yet reported
        self._due: list[tuple[float, str]] = []  # (when it ends, handle id) with run_s

    def _check(self) -> None:
        if self.dead:
            raise BackendUnavailable(f"backend {self.name} is not answering")

    def start(self, launch: Launch) -> dict[str, Any]:
        self._check()
        self._n += 1
        hid = f"{self.name}-{self._n}"
        self.running[hid] = {"launch": launch, "at": self.clock()}
        run = self.run_for(launch) if self.run_for is not None else self.run_s
        if run is not None:
            heapq.heappush(self._due, (self.clock() + run, hid))
        self.launches.append(launch)
        return {"id": hid, "cluster": launch.cluster}

    def poll(self, handles: dict[int, dict[str, Any]]) -> dict[int, Status]:
        """Only what changed: work that ended since the last poll, and handles this backend never started.
        Event-driven like a real backend should be, so a poll over 100,000 running handles stays cheap."""
        self._check()
        out: dict[int, Status] = {}
        for pid in handles.keys() - self._pids:  # handles seen for the first time (set difference, in C)
            hid = handles[pid]["id"]
            self._pid_of[hid] = pid
            if hid not in self.running and hid not in self.outcome:
                out[pid] = Status("lost", message="unknown to the backend")
        self._pids = set(handles)
        if self._due:
            now = self.clock()
            while self._due and self._due[0][0] <= now:
                _, hid = heapq.heappop(self._due)
                if hid in self.running and hid not in self.outcome:
                    self.outcome[hid] = Status("succeeded", 0)
                    self._changed.append(hid)
        changed, self._changed = self._changed, []
        for hid in changed:
            pid = self._pid_of.get(hid)
            if pid is not None and pid in handles:
                out[pid] = self.outcome[hid]
            elif pid is None:
                self._changed.append(hid)  # not polled yet: report it once it is
        return out

    def cancel(self, handle: dict[str, Any]) -> None:
        self._check()
        self.cancelled.append(handle["id"])
        if handle["id"] not in self.outcome:
            self.outcome[handle["id"]] = Status("failed", None, "cancelled")
            self._changed.append(handle["id"])
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
        self._changed.append(hid)
        self.running.pop(hid, None)

    def vanish(self, job_id: int) -> None:
        hid = self._handle_of(job_id)
        self.running.pop(hid, None)
        self.outcome[hid] = Status("lost", message="its process group died")
        self._changed.append(hid)

    def lose(self, cluster: str, domain: int | None = None, reason: str = "injected") -> None:
        self._losses.append(Loss(cluster, domain, reason))

    def next_due(self) -> float | None:
        """When the next running work ends by itself (for a harness that steps a manual clock)."""
        while self._due and (self._due[0][1] not in self.running or self._due[0][1] in self.outcome):
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    def kill(self) -> None:
        self.dead = True

    def revive(self) -> None:
        self.dead = False
