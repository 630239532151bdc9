"""One translator from any work item to scheduler work: job files, scenario workloads and trace rows.

Every source gets the same defaults from here: a batch job is preemptible and a training run or an
inference replica is not unless it says so; a batch gang's GPUs share one domain, a training gang is
split in groups of its `tp` (1 by default), a replica's GPUs share one domain unless its `tp` says less;
a checkpoint every hour unless the source says otherwise.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from math import gcd
from typing import TYPE_CHECKING, Iterator

from ..catalog import Catalog
from ..model.job import JobSpec
from ..model.scenario import Portfolio
from ..model.workloads import BatchWorkload, InferenceWorkload, TrainingWorkload
from ..placement.request import Request
from ..placement.state import to_seconds
from .work import Work

if TYPE_CHECKING:  # plain data classes of the trace importers
    from ..simulation.traces.base import DemandTrace, TraceJob

Stream = Iterator[Work]  # work in submit order, created lazily
CHECKPOINT_S = 3600.0


def default_preemptible(kind: str, given: bool | None = None) -> bool:
    return given if given is not None else kind == "batch"


def default_group(kind: str, gpus: int, tp: int | None) -> int:
    return tp or (1 if kind == "training" else gpus)


def _frozen(xs: list[str] | None) -> frozenset[str] | None:
    return frozenset(xs) if xs else None


def _speeds(types: dict[str, float], catalog: Catalog) -> dict[str, float]:
    return {catalog.canonical(t): s for t, s in types.items()}


# -- job files ----------------------------------------------------------------------------------------
def job_requests(spec: JobSpec, catalog: Catalog, prefix: str | None = None) -> list[Request]:
    """A job file's engine requests: one gang, or one per inference replica (`<prefix>/<region>/<i>`, each
    pinned to its region and sharing the service's spread key). `prefix` defaults to the job's name."""
    name = prefix if prefix is not None else spec.name
    speeds = _speeds(spec.gpu_types, catalog)
    priority = spec.effective_priority
    providers = _frozen(spec.providers)
    if spec.kind != "inference":
        return [Request(id=name, gpus=spec.gpu_count, group=default_group(spec.kind, spec.gpu_count, spec.tp),
                        speeds=speeds, team=spec.team, kind=spec.kind, priority=priority,
                        preemptible=default_preemptible(spec.kind, spec.preemptible), regions=_frozen(spec.regions),
                        providers=providers, checkpoint_interval_s=spec.checkpoint_interval_s,
                        workload=spec.name)]
    out = []
    for region, n in (spec.replicas or {}).items():
        for i in range(n):
            out.append(Request(id=f"{name}/{region}/{i}", gpus=spec.gpu_count, group=spec.group_gpus,
                               speeds=speeds, team=spec.team, kind="inference", priority=priority,
                               preemptible=default_preemptible("inference", spec.preemptible),
                               regions=frozenset([region]), providers=providers,
                               checkpoint_interval_s=spec.checkpoint_interval_s, spread_key=spec.name,
                               workload=spec.name))
    return out


def job_work(spec: JobSpec, catalog: Catalog, submit_s: float, prefix: str | None = None, tag: object = None,
             label: str | None = None) -> Work:
    """A job file as one piece of work, placed all or nothing. Its length is `duration_s`, else
    `work_gpu_hours` over its GPUs, else unknown (it runs until it stops by itself or is cancelled)."""
    reqs = job_requests(spec, catalog, prefix)
    if spec.kind == "inference":
        work_s = math.inf
    elif spec.duration_s is not None:
        work_s = spec.duration_s
    elif spec.work_gpu_hours is not None:
        work_s = spec.work_gpu_hours * 3600.0 / spec.gpu_count
    else:
        work_s = math.inf
    return Work(reqs, submit_s, work_s, kind=spec.kind, workload=spec.name, min_providers=spec.min_providers,
                tag=tag, id=prefix if prefix is not None else spec.name, label=label)


# -- scenario workloads -----------------------------------------------------------------------------------
def training_stream(w: TrainingWorkload, catalog: Catalog) -> Stream:
    """The runs of a training program: run i+1 is submitted when run i finishes (chained by the simulator)."""
    req = Request(id=f"{w.name}/run0", gpus=w.gpus, group=default_group("training", w.gpus, w.tp),
                  speeds=_speeds(w.gpu_types, catalog), team=w.team, kind="training", priority=w.priority,
                  preemptible=w.preemptible, regions=_frozen(w.regions), providers=_frozen(w.providers),
                  checkpoint_interval_s=w.checkpoint_interval_s, workload=w.name)
    job = Work(req, to_seconds(w.start), w.work_gpu_hours * 3600.0 / w.gpus, kind="training", workload=w.name,
               deadline_s=to_seconds(w.deadline) if w.deadline else None)
    job.runs_left = w.runs - 1
    yield job


def next_run(job: Work, now: float) -> Work | None:
    """The next run of a chained training program, submitted now, or None after the last."""
    left = job.runs_left
    if left <= 0:
        return None
    base, _, n = job.id.rpartition("/run")
    r = job.request
    req = Request(id=f"{base}/run{int(n) + 1}", gpus=r.gpus, group=r.group, speeds=r.speeds, team=r.team,
                  kind=r.kind, priority=r.priority, preemptible=r.preemptible, regions=r.regions,
                  providers=r.providers, checkpoint_interval_s=r.checkpoint_interval_s, workload=r.workload)
    nxt = Work(req, now, job.total_work_s, kind=job.kind, workload=job.workload, deadline_s=job.deadline_s)
    nxt.runs_left = left - 1
    return nxt


def batch_stream(w: BatchWorkload, catalog: Catalog, rng: random.Random, from_s: float, until_s: float) -> Stream:
    """Poisson arrivals at `jobs_per_day` (from `from_s` at the earliest), durations exponential with mean
    `duration_s`."""
    speeds = _speeds(w.gpu_types, catalog)
    t, end = max(to_seconds(w.start), from_s), min(to_seconds(w.end), until_s)
    rate = w.jobs_per_day / 86400.0
    regions, providers = _frozen(w.regions), _frozen(w.providers)
    i = 0
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return
        req = Request(id=f"{w.name}/{i}", gpus=w.gpus, group=default_group("batch", w.gpus, None), speeds=speeds,
                      team=w.team, kind="batch", priority=w.priority, preemptible=default_preemptible("batch"),
                      regions=regions, providers=providers, checkpoint_interval_s=CHECKPOINT_S, workload=w.name)
        yield Work(req, t, max(1.0, rng.expovariate(1.0 / w.duration_s)), kind="batch", workload=w.name)
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
    preemptible: bool = False

    def replica(self, region: str, n: int, now: float) -> Work:
        req = Request(id=f"{self.name}/{region}/{n}", gpus=self.gpus_per_replica, group=self.group,
                      speeds=self.speeds, team=self.team, kind="inference", priority=self.priority,
                      preemptible=self.preemptible, regions=frozenset([region]), providers=self.providers,
                      checkpoint_interval_s=CHECKPOINT_S, spread_key=self.name,
                      workload=f"{self.name}@{region}")   # the plan's stream: the service in this region
        return Work(req, now, math.inf, kind="inference", workload=self.name, min_providers=self.min_providers)


def service_of(w: InferenceWorkload, catalog: Catalog) -> Service:
    return Service(name=w.name, team=w.team, priority=w.priority, gpus_per_replica=w.gpus_per_replica,
                   group=w.replica_tp, speeds=_speeds(w.gpu_types, catalog), providers=_frozen(w.providers),
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


# -- trace rows -------------------------------------------------------------------------------------------
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
    checkpoint_interval_s: float = CHECKPOINT_S
    domain_gpus: int = 8                        # GPUs per node the trace's multi-GPU jobs were packed in


def trace_group(job: TraceJob, domain_gpus: int) -> int:
    if job.group:
        return job.group
    return job.gpus if job.gpus <= domain_gpus else gcd(job.gpus, domain_gpus)


def trace_team(job: TraceJob, p: Portfolio, m: TraceMapping) -> str:
    return m.team or (job.queue if job.queue in p.teams else "default")


def trace_speeds(job: TraceJob, present: list[str], m: TraceMapping) -> dict[str, float]:
    """The GPU types a trace row may run on: the mapping's when it fixes them, else the models the row
    allows (`gpu_type`, `|`-separated, e.g. Alibaba's gpu_spec) that the portfolio has, else any type."""
    if m.gpu_types is not None:
        return m.gpu_types
    if job.speeds:   # measured per type (Gavel's throughputs): the types the portfolio has
        kept = {g: s for g, s in job.speeds.items() if g in present}
        if kept:
            return kept
    named = [g.strip() for g in (job.gpu_type or "").split("|") if g.strip()]
    kept = {g: 1.0 for g in named if g in present}
    return kept or {g: 1.0 for g in present}


def trace_stream(jobs: list[TraceJob], p: Portfolio, m: TraceMapping) -> Stream:
    """Trace jobs as work. The GPU types a row names are kept when the portfolio has them (and the mapping
    does not fix the types); the trace's queue becomes the team when it names one."""
    present = sorted({c.gpu.name for c in p.clusters.values()})
    cache: dict[str, dict[str, float]] = {}
    for i, t in enumerate(jobs):
        regions = frozenset([t.queue]) if m.queue_as_region and t.queue else m.regions
        key = t.gpu_type or ""
        allowed = cache.get(key) if not t.speeds else None
        if allowed is None:
            allowed = trace_speeds(t, present, m)
            if not t.speeds:
                cache[key] = allowed
        req = Request(id=t.name or f"trace/{i}", gpus=t.gpus, group=trace_group(t, m.domain_gpus), speeds=allowed,
                      team=trace_team(t, p, m), kind=t.kind, priority=t.priority,
                      preemptible=default_preemptible(t.kind), regions=regions, providers=m.providers,
                      checkpoint_interval_s=m.checkpoint_interval_s)
        yield Work(req, m.start_s + t.submit_s / m.time_scale, t.duration_s, kind=t.kind, workload="trace")


def demand_service(trace: DemandTrace, name: str, region: str, gpus_per_replica: int, speeds: dict[str, float],
                   start_s: float, time_scale: float = 1.0, priority: int = 500, team: str = "default") -> Service:
    """An inference service whose replica demand follows a request trace (see docs/traces.md)."""
    return Service(name=name, team=team, priority=priority, gpus_per_replica=gpus_per_replica,
                   group=gpus_per_replica, speeds=speeds, providers=None,
                   demand=[(start_s + d.t_s / time_scale, {region: d.replicas}) for d in trace.points])
