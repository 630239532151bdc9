"""A piece of work as the scheduler tracks it: its engine requests, its progress and what happened to it.

One class for both drivers: the simulator's jobs and replicas and the live server's jobs are all `Work`.
A gang is one request; a live inference job is a set of replica requests placed all or nothing.
"""

from __future__ import annotations

import math
from typing import Any

from ..placement.request import Request

PENDING, QUEUED, RUNNING, FINISHED, FAILED = "pending", "queued", "running", "finished", "failed"


def lost_gpu_s(request: Request, kind: str, elapsed_s: float) -> float:
    """GPU-seconds of work an interruption after `elapsed_s` of running throws away: what ran since the
    last checkpoint (one every checkpoint interval since the start; no interval: everything). An inference
    replica carries no progress, so it loses nothing."""
    if kind == "inference" or elapsed_s <= 0:
        return 0.0
    interval = request.checkpoint_interval_s
    since = elapsed_s % interval if interval > 0 else elapsed_s
    return since * request.gpus


class Work:
    """What the scheduler queues, places and interrupts. `tag` is the driver's own (the live job id)."""

    __slots__ = ("requests", "submit_s", "work_s", "total_work_s", "kind", "workload", "deadline_s", "state",
                 "seq", "first_start_s", "start_s", "speed", "end", "finish_s", "restarts", "lost_gpu_s",
                 "run_gpu_s", "fail_reason", "runs_left", "min_providers", "reason", "attempt", "tag", "gpus",
                 "team", "priority", "blocker", "part_key", "id", "label")

    def __init__(self, request: Request | list[Request], submit_s: float, work_s: float, kind: str = "batch",
                 workload: str = "", deadline_s: float | None = None, min_providers: int = 1, tag: Any = None,
                 id: str | None = None, label: str | None = None):
        self.requests: list[Request] = list(request) if isinstance(request, list) else [request]
        if not self.requests:
            raise ValueError("work needs at least one request")
        self.submit_s = submit_s
        self.work_s = work_s                  # remaining work, seconds at speed 1.0 (inf: runs until stopped)
        self.total_work_s = work_s
        self.kind = kind
        self.workload = workload              # scenario workload or trace it came from
        self.deadline_s = deadline_s
        self.state = PENDING
        self.seq = -1                         # arrival order (ties in queue keys); set when first queued
        self.first_start_s: float | None = None
        self.start_s = 0.0                    # start of the current run
        self.speed = 1.0                      # speed of the current run's (slowest) GPU type
        self.end: list | None = None          # the driver's handle of the finish event
        self.finish_s: float | None = None
        self.restarts = 0
        self.lost_gpu_s = 0.0
        self.run_gpu_s = 0.0                  # GPU-seconds allocated over all runs
        self.fail_reason: str | None = None
        self.runs_left = 0                    # further runs of a training program, submitted one after another
        self.min_providers = min_providers
        self.reason: str | None = None        # why it waits (the last failed try)
        self.attempt = 0                      # placements so far
        self.tag = tag
        self.id: str = id if id is not None else self.requests[0].id
        self.label: str = label if label is not None else self.id   # how messages name it
        first = self.requests[0]
        self.gpus = sum(r.gpus for r in self.requests)
        self.team = first.team
        self.priority = first.priority
        # Work alike in this is placed or refused alike: one failure in a pass stands for all of it.
        self.blocker: tuple = (tuple((r.shape, r.team, r.priority, r.preemptible) for r in self.requests),
                               min_providers)
        # The queue partition: work competing for the same clusters.
        self.part_key: tuple = tuple(r.shape[:3] for r in self.requests)

    @property
    def request(self) -> Request:
        return self.requests[0]

    def estimated_run_s(self) -> float:
        """Known remaining duration at speed 1.0 (what shortest-job-first and backfill read)."""
        return self.work_s

    def best_speed(self) -> float:
        speeds = self.requests[0].speeds
        return max(speeds.values()) if speeds else 1.0

    def interrupt(self, now: float) -> float:
        """Stop the current run at `now`: keep progress up to the last checkpoint. Returns GPU-seconds lost."""
        elapsed = max(0.0, now - self.start_s)
        lost = 0.0
        for r in self.requests:
            lost += lost_gpu_s(r, self.kind, elapsed)
        if not math.isinf(self.work_s):
            interval = self.requests[0].checkpoint_interval_s
            saved = (elapsed // interval) * interval if interval > 0 else 0.0
            self.work_s = max(0.0, self.work_s - saved * self.speed)
        self.lost_gpu_s += lost
        self.run_gpu_s += elapsed * self.gpus
        self.restarts += 1
        return lost

    def __repr__(self) -> str:
        return f"Work({self.id!r}, {self.gpus} GPUs, {self.state})"
