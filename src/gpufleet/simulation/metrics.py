"""What a simulation measured: per-job outcomes, use and money over time, failures, inference service levels."""

from __future__ import annotations

from array import array
from collections import Counter

from ..scheduling.work import Work as SimJob


def percentile(values: array | list, q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return float(s[min(len(s) - 1, int(q * len(s)))])


class Metrics:
    def __init__(self, providers: list[str], contracts: list[str]):
        self.jobs = 0
        self.finished = 0
        self.failed = 0
        self.failed_reasons: Counter = Counter()
        self.waits = array("d")          # first start - submit, for every job that started
        self.jcts = array("d")           # finish - submit, for finished jobs
        self.restarts = 0
        self.lost_gpu_s = 0.0
        self.run_gpu_s = 0.0
        self.deadlines_met = 0
        self.deadlines_missed = 0
        self.failures: Counter = Counter()
        self.failure_log: list[tuple[float, str, str, int]] = []   # (t, kind, target, jobs interrupted)
        self.preemptions = 0
        self.by_kind: Counter = Counter()
        # time series, one point per tick
        self.ts_t: list[float] = []
        self.ts_used: dict[str, list[float]] = {p: [] for p in providers}  # mean allocated GPUs over the tick
        self.ts_cap: dict[str, list[float]] = {p: [] for p in providers}   # mean live GPUs over the tick
        self.ts_share: dict[str, dict[str, list[float]]] = {}
        self.ts_spent: dict[str, list[float]] = {k: [] for k in contracts}
        # inference: replica-seconds asked and served per service
        self.asked_s: dict[str, float] = {}
        self.served_s: dict[str, float] = {}

    def started(self, job: SimJob) -> None:
        if job.first_start_s is not None and job.restarts == 0 and job.kind != "inference":
            self.waits.append(job.first_start_s - job.submit_s)

    def done(self, job: SimJob, now: float) -> None:
        self.finished += 1
        self.jcts.append(now - job.submit_s)
        self._absorb(job)
        if job.deadline_s is not None:
            if now <= job.deadline_s:
                self.deadlines_met += 1
            else:
                self.deadlines_missed += 1

    def failed_job(self, job: SimJob) -> None:
        self.failed += 1
        self.failed_reasons[job.fail_reason or "unknown"] += 1
        self._absorb(job)

    def _absorb(self, job: SimJob) -> None:
        self.restarts += job.restarts
        self.lost_gpu_s += job.lost_gpu_s
        self.run_gpu_s += job.run_gpu_s
