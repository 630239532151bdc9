"""Turn job files and workloads into placement requests, and place inference replica sets."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..catalog import Catalog
from ..model.job import JobSpec
from .engine import Engine
from .request import Allocation, Decision, Request


def _speeds(types: dict[str, float], catalog: Catalog) -> dict[str, float]:
    return {catalog.canonical(t): s for t, s in types.items()}


def request_from_job(job: JobSpec, catalog: Catalog, request_id: str | None = None) -> Request:
    """A training or batch job as one gang request."""
    kind = job.kind
    preemptible = job.preemptible if job.preemptible is not None else kind == "batch"
    priority = job.effective_priority
    group = job.tp or (1 if kind == "training" else job.gpu_count)
    return Request(id=request_id or job.name, gpus=job.gpu_count, group=group,
                   speeds=_speeds(job.gpu_types, catalog), team=job.team, kind=kind, priority=priority,
                   preemptible=preemptible, regions=frozenset(job.regions) if job.regions else None,
                   providers=frozenset(job.providers) if job.providers else None,
                   checkpoint_interval_s=job.checkpoint_interval_s)


def replica_requests(job: JobSpec, catalog: Catalog) -> list[Request]:
    """One request per inference replica, each pinned to its region and sharing the service's spread key."""
    priority = job.effective_priority
    allowed = frozenset(job.providers) if job.providers else None
    out = []
    for region, n in (job.replicas or {}).items():
        for i in range(n):
            out.append(Request(id=f"{job.name}/{region}/{i}", gpus=job.gpu_count, group=job.group_gpus,
                               speeds=_speeds(job.gpu_types, catalog), team=job.team, kind="inference",
                               priority=priority, preemptible=bool(job.preemptible), regions=frozenset([region]),
                               providers=allowed, spread_key=job.name))
    return out


@dataclass
class ReplicaSetResult:
    decisions: list[Decision] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)

    @property
    def providers(self) -> set[str]:
        return {a.provider for a in self.allocations}

    @property
    def unplaced(self) -> list[Decision]:
        return [d for d in self.decisions if not d.placed]


def place_replicas(engine: Engine, requests: list[Request], min_providers: int = 1,
                   explain: bool = False) -> ReplicaSetResult:
    """Place replicas one by one; the first ones go to providers not yet used until `min_providers` is met."""
    res = ReplicaSetResult()
    for req in requests:
        d = None
        used = res.providers
        if len(used) < min_providers:
            base = req.providers
            pool = {c.provider for c in engine.state.clusters} if base is None else set(base)
            fresh = frozenset(pool - used)
            if fresh:
                req.providers = fresh
                req.reshape()
                d = engine.decide(req, explain)
                req.providers = base
                req.reshape()
                if not d.placed:
                    d = None
        if d is None:
            d = engine.decide(req, explain)
        res.decisions.append(d)
        if d.placed:
            res.allocations.append(engine.commit(d))
    return res
