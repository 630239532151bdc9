"""A job as the simulator tracks it: its request, its progress, and what happened to it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..placement.request import Request

PENDING, QUEUED, RUNNING, FINISHED, FAILED = "pending", "queued", "running", "finished", "failed"


@dataclass(slots=True, eq=False)
class SimJob:
    request: Request
    submit_s: float
    work_s: float                     # remaining work, in seconds at speed 1.0 (math.inf: runs until stopped)
    kind: str = "batch"
    workload: str = ""                # scenario workload or trace it came from
    deadline_s: float | None = None
    state: str = PENDING
    seq: int = 0                      # arrival order (ties in queue keys)
    first_start_s: float | None = None
    start_s: float = 0.0              # start of the current run
    speed: float = 1.0                # speed of the current run's GPU type
    end: list | None = None           # handle of the finish event
    finish_s: float | None = None
    restarts: int = 0
    lost_gpu_s: float = 0.0
    run_gpu_s: float = 0.0            # GPU-seconds allocated over all runs
    fail_reason: str | None = None
    runs_left: int = 0                # further runs of a training program, submitted one after another
    total_work_s: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.total_work_s = self.work_s

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def gpus(self) -> int:
        return self.request.gpus

    def estimated_run_s(self) -> float:
        """Known remaining duration at speed 1.0 (what shortest-job-first and backfill read)."""
        return self.work_s

    def interrupt(self, now: float) -> float:
        """Stop the current run at `now`: keep progress up to the last checkpoint. Returns GPU-seconds lost."""
        elapsed = max(0.0, now - self.start_s)
        interval = self.request.checkpoint_interval_s
        saved = elapsed if math.isinf(self.work_s) else (elapsed // interval) * interval if interval > 0 else 0.0
        if not math.isinf(self.work_s):
            self.work_s = max(0.0, self.work_s - saved * self.speed)
        lost = (elapsed - saved) * self.request.gpus
        self.lost_gpu_s += lost
        self.run_gpu_s += elapsed * self.request.gpus
        self.restarts += 1
        return lost
