"""Where simulated work comes from: the scenario's workloads and imported traces, as arrival streams."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from math import gcd
from typing import Iterator

from ..catalog import Catalog
from ..model.scenario import Portfolio
from ..model.workloads import BatchWorkload, InferenceWorkload, TrainingWorkload
from ..placement.request import Request
from ..placement.state import to_seconds
from .jobs import SimJob
from .traces.base import DemandTrace, TraceJob

Stream = Iterator[SimJob]  # jobs in submit order, created lazily


def _frozen(xs: list[str] | None) -> frozenset[str] | None:
    return frozenset(xs) if xs else None


def training_stream(w: TrainingWorkload, catalog: Catalog) -> Stream:
    """The runs of a training program: run i+1 is submitted when run i finishes (chained by the simulator)."""
    speeds = {catalog.canonical(t): s for t, s in w.gpu_types.items()}
    work_s = w.work_gpu_hours * 3600.0 / w.gpus
    deadline = to_seconds(w.deadline) if w.deadline else None
    req = Request(id=f"{w.name}/run0", gpus=w.gpus, group=w.tp, speeds=speeds, team=w.team, kind="training",
                  priority=w.priority, preemptible=w.preemptible, regions=_frozen(w.regions),
                  providers=_frozen(w.providers), checkpoint_interval_s=w.checkpoint_interval_s)
    job = SimJob(req, to_seconds(w.start), work_s, kind="training", workload=w.name, deadline_s=deadline)
    job.runs_left = w.runs - 1
    yield job


def next_run(job: SimJob, now: float) -> SimJob | None:
    """The next run of a chained training program, submitted now, or None after the last."""
    left = job.runs_left
    if left <= 0:
        return None
    base, _, n = job.id.rpartition("/run")
    r = job.request
    req = Request(id=f"{base}/run{int(n) + 1}", gpus=r.gpus, group=r.group, speeds=r.speeds, team=r.team,
                  kind=r.kind, priority=r.priority, preemptible=r.preemptible, regions=r.regions,
                  providers=r.providers, checkpoint_interval_s=r.checkpoint_interval_s)
    nxt = SimJob(req, now, job.total_work_s, kind=job.kind, workload=job.workload, deadline_s=job.deadline_s)
    nxt.runs_left = left - 1
    return nxt


def batch_stream(w: BatchWorkload, catalog: Catalog, rng: random.Random, from_s: float, until_s: float) -> Stream:
    """Poisson arrivals at `jobs_per_day` (from `from_s` at the earliest), durations exponential with mean
    `duration_s`."""
    speeds = {catalog.canonical(t): s for t, s in w.gpu_types.items()}
    t, end = max(to_seconds(w.start), from_s), min(to_seconds(w.end), until_s)
    rate = w.jobs_per_day / 86400.0
    regions, providers = _frozen(w.regions), _frozen(w.providers)
    i = 0
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return
        req = Request(id=f"{w.name}/{i}", gpus=w.gpus, group=w.gpus, speeds=speeds, team=w.team, kind="batch",
                      priority=w.priority, preemptible=True, regions=regions, providers=providers,
                      checkpoint_interval_s=3600.0)
        yield SimJob(req, t, max(1.0, rng.expovariate(1.0 / w.duration_s)), kind="batch", workload=w.name)
        i += 1


@dataclass
class Service:
    """An inference service: replicas per region (or area) following a demand series."""

    name: str
    team: str
    priority: int
    gpus_per_replica: int
    group: int
    speeds: dict[str, float]
    providers: frozenset[str] | None
    demand: list[tuple[float, dict[str, int]]]  # (time, replicas per region/area), sorted
    min_providers: int = 1

    def replica(self, region: str, n: int, now: float) -> SimJob:
        req = Request(id=f"{self.name}/{region}/{n}", gpus=self.gpus_per_replica, group=self.group,
                      speeds=self.speeds, team=self.team, kind="inference", priority=self.priority,
                      preemptible=False, regions=frozenset([region]), providers=self.providers,
                      spread_key=self.name)
        return SimJob(req, now, math.inf, kind="inference", workload=self.name)


def service_of(w: InferenceWorkload, catalog: Catalog) -> Service:
    return Service(name=w.name, team=w.team, priority=w.priority, gpus_per_replica=w.gpus_per_replica,
                   group=w.replica_tp, speeds={catalog.canonical(t): s for t, s in w.gpu_types.items()},
                   providers=_frozen(w.providers),
                   demand=[(to_seconds(d.date), dict(d.replicas)) for d in w.demand], min_providers=w.min_providers)


def scenario_streams(p: Portfolio, catalog: Catalog, rng: random.Random, from_s: float,
                     until_s: float) -> tuple[list[Stream], list[Service]]:
    streams: list[Stream] = []
    services: list[Service] = []
    for w in p.workloads:
        if isinstance(w, TrainingWorkload):
            streams.append(training_stream(w, catalog))
        elif isinstance(w, BatchWorkload):
            streams.append(batch_stream(w, catalog, random.Random(rng.random()), from_s, until_s))
        else:
            services.append(service_of(w, catalog))
    return streams, services


@dataclass
class TraceMapping:
    """How a trace's jobs land on the portfolio."""

    gpu_types: dict[str, float] | None = None   # allowed types and speeds; default every type of the portfolio
    providers: frozenset[str] | None = None
    regions: frozenset[str] | None = None
    queue_as_region: bool = False               # the trace's queue (e.g. Philly VC) names the region
    time_scale: float = 1.0                     # >1 compresses the trace's arrivals (more load)
    start_s: float = 0.0                        # when the trace's t=0 lands
    team: str | None = None                     # default: the trace's queue if it names a team, else "default"
    checkpoint_interval_s: float = 3600.0
    domain_gpus: int = 8                        # GPUs per node the trace's multi-GPU jobs were packed in


def trace_group(job: TraceJob, domain_gpus: int) -> int:
    if job.group:
        return job.group
    return job.gpus if job.gpus <= domain_gpus else gcd(job.gpus, domain_gpus)


def trace_stream(jobs: list[TraceJob], p: Portfolio, m: TraceMapping) -> Stream:
    """Trace jobs as simulator jobs. A GPU type named by the trace is kept when the portfolio has it (and
    the mapping does not fix the types); the trace's queue becomes the team when it names one."""
    present = sorted({c.gpu.name for c in p.clusters.values()})
    speeds = m.gpu_types or {g: 1.0 for g in present}
    own: dict[str, dict[str, float]] = {g: {g: 1.0} for g in present}
    for i, t in enumerate(jobs):
        regions = frozenset([t.queue]) if m.queue_as_region and t.queue else m.regions
        team = m.team or (t.queue if t.queue in p.teams else "default")
        allowed = own.get(t.gpu_type or "", speeds) if m.gpu_types is None else speeds
        req = Request(id=t.name or f"trace/{i}", gpus=t.gpus, group=trace_group(t, m.domain_gpus), speeds=allowed,
                      team=team, kind=t.kind, priority=t.priority, preemptible=t.kind == "batch",
                      regions=regions, providers=m.providers, checkpoint_interval_s=m.checkpoint_interval_s)
        yield SimJob(req, m.start_s + t.submit_s / m.time_scale, t.duration_s, kind=t.kind, workload="trace")


def demand_service(trace: DemandTrace, name: str, region: str, gpus_per_replica: int, speeds: dict[str, float],
                   start_s: float, time_scale: float = 1.0, priority: int = 500) -> Service:
    """An inference service whose replica demand follows a request trace (see docs/traces.md)."""
    return Service(name=name, team="default", priority=priority, gpus_per_replica=gpus_per_replica,
                   group=gpus_per_replica, speeds=speeds, providers=None,
                   demand=[(start_s + d.t_s / time_scale, {region: d.replicas}) for d in trace.points])
