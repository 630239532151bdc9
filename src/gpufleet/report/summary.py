"""What `gpufleet show` reports: capacity per provider per month, contracts and their totals, the work."""

from __future__ import annotations

from datetime import date
from typing import Any

from ..model.contracts import OnDemand, ReservedCapacity, SpendCommitment
from ..model.scenario import Portfolio
from ..model.workloads import BatchWorkload, InferenceWorkload, TrainingWorkload


def month_starts(start: date, end: date) -> list[date]:
    """First day of every month that overlaps [start, end)."""
    out, d = [], date(start.year, start.month, 1)
    while d < end:
        out.append(d)
        d = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return out


def _hours(a: date, b: date) -> float:
    return max(0, (b - a).days) * 24.0


def contract_summary(c: SpendCommitment | ReservedCapacity | OnDemand) -> dict[str, Any]:
    base = {"name": c.name, "kind": c.kind, "provider": c.provider, "clusters": list(c.clusters),
            "start": c.start.isoformat(), "end": c.end.isoformat()}
    if isinstance(c, SpendCommitment):
        return base | {"committed_usd": c.commitment_usd, "price_per_gpu_hour": c.price_per_gpu_hour,
                       "gpu_hours_covered": c.commitment_usd / c.price_per_gpu_hour if c.price_per_gpu_hour else None,
                       "avg_gpus_covered": (c.commitment_usd / c.price_per_gpu_hour / c.term_hours)
                       if c.price_per_gpu_hour and c.term_hours else None}
    if isinstance(c, ReservedCapacity):
        total = c.gpus * c.price_per_gpu_hour * _hours(c.start, c.end)
        total += sum(e.gpus * e.price_per_gpu_hour * _hours(e.start, c.end) for e in c.expansions)
        return base | {"committed_usd": total, "gpus": c.gpus, "price_per_gpu_hour": c.price_per_gpu_hour,
                       "expansions": [{"start": e.start.isoformat(), "gpus": e.gpus,
                                       "price_per_gpu_hour": e.price_per_gpu_hour} for e in c.expansions]}
    return base | {"committed_usd": 0.0, "discount": c.discount}


def workload_summary(w: TrainingWorkload | InferenceWorkload | BatchWorkload) -> dict[str, Any]:
    base = {"name": w.name, "kind": w.kind, "team": w.team, "priority": w.priority,
            "gpu_types": dict(w.gpu_types)}
    if isinstance(w, TrainingWorkload):
        return base | {"gpus": w.gpus, "tp": w.tp, "work_gpu_hours": w.work_gpu_hours, "runs": w.runs,
                       "start": w.start.isoformat(),
                       "deadline": w.deadline.isoformat() if w.deadline else None,
                       "preemptible": w.preemptible}
    if isinstance(w, InferenceWorkload):
        peak = max(sum(d.replicas.values()) for d in w.demand)
        return base | {"gpus_per_replica": w.gpus_per_replica, "peak_replicas": peak,
                       "peak_gpus": peak * w.gpus_per_replica, "min_providers": w.min_providers,
                       "regions": sorted({r for d in w.demand for r in d.replicas})}
    return base | {"gpus": w.gpus, "jobs_per_day": w.jobs_per_day, "duration_s": w.duration_s,
                   "avg_gpus": w.gpus * w.jobs_per_day * w.duration_s / 86400.0,
                   "start": w.start.isoformat(), "end": w.end.isoformat()}


def summarize(p: Portfolio) -> dict[str, Any]:
    """The stable `show --json` document (keys documented in docs/cli.md)."""
    months = month_starts(p.start, p.end)
    providers = sorted({c.provider for c in p.clusters.values()})
    by_provider = {pr: [sum(c.gpus_at(m) for c in p.clusters_of(pr)) for m in months] for pr in providers}
    totals = [sum(v[i] for v in by_provider.values()) for i in range(len(months))]
    contracts = [contract_summary(c) for c in p.contracts]
    by_kind: dict[str, float] = {}
    for c in contracts:
        by_kind[c["kind"]] = by_kind.get(c["kind"], 0.0) + c["committed_usd"]
    return {
        "scenario": p.scenario.name,
        "start": p.start.isoformat(),
        "end": p.end.isoformat(),
        "clusters": [{"name": c.name, "provider": c.provider, "region": c.region, "area": c.area, "gpu": c.gpu.name,
                      "domain_size": c.domain_size, "usable_gpus_per_domain": c.usable_gpus_per_domain,
                      "max_gpus": c.max_domains * c.usable_gpus_per_domain,
                      "fabric_max_gpus": c.max_gang_gpus, "price_per_gpu_hour": c.price_per_gpu_hour}
                     for c in p.clusters.values()],
        "capacity": {"months": [m.strftime("%Y-%m") for m in months], "gpus_by_provider": by_provider,
                     "total_gpus": totals},
        "contracts": contracts,
        "contract_totals": {"committed_usd": sum(by_kind.values()), "committed_usd_by_kind": by_kind},
        "workloads": [workload_summary(w) for w in p.workloads],
    }
