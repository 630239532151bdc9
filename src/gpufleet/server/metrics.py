"""Prometheus metrics of one server (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.submissions = Counter("gpufleet_submissions", "Jobs accepted (new, not idempotent repeats)",
                                   registry=r)
        self.duplicates = Counter("gpufleet_duplicate_submissions", "Submissions answered with an existing job "
                                  "(same idempotency key)", registry=r)
        self.placements = Counter("gpufleet_placements", "Jobs placed", registry=r)
        self.requeues = Counter("gpufleet_requeues", "Jobs requeued after lost capacity or preemption", registry=r)
        self.finished = Counter("gpufleet_jobs_finished", "Jobs that ended, by final state", ["state"], registry=r)
        self.submit_to_place = Histogram(
            "gpufleet_submit_to_place_seconds", "Time from submission to committed placement",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600),
            registry=r)
        self.requests = Counter("gpufleet_http_requests", "API requests by route and status class",
                                ["route", "status"], registry=r)
        self.queued = Gauge("gpufleet_queued_jobs", "Jobs waiting for capacity", registry=r)
        self.active = Gauge("gpufleet_active_placements", "Placements holding GPUs", registry=r)
        self.free = Gauge("gpufleet_free_gpus", "Free GPUs in live domains", registry=r)
