"""The plan document: stable keys (docs/planning.md), plain JSON types, periods in order."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from .accounts import cost_breakdown, per_contract
from .problem import Problem
from .shadow import binding, shadow_prices
from .solution import Plan
from .solve import solver_version


def _r(x: float, nd: int = 1) -> float:
    return round(float(x), nd) + 0.0   # no negative zeros in the document


def _list(a: np.ndarray, nd: int = 1) -> list[float]:
    return [_r(x, nd) for x in a]


def periods_doc(pr: Problem) -> list[dict[str, Any]]:
    b, labels = pr.periods.bounds, pr.periods.labels
    return [{"label": labels[i], "start": b[i].isoformat(), "end": b[i + 1].isoformat(),
             "last_day": (b[i + 1] - timedelta(days=1)).isoformat(), "hours": _r(pr.periods.hours[i], 0)}
            for i in range(pr.periods.n)]


def per_provider(plan: Plan, pr: Problem) -> dict[str, dict[str, Any]]:
    use, cap, crit = plan.provider_use(), plan.provider_capacity(), plan.provider_use(pr.critical)
    return {prov: {"gpu_hours": _list(use[q]), "capacity_gpu_hours": _list(cap[q]),
                   "critical_gpu_hours": _list(crit[q]), "total_gpu_hours": _r(use[q].sum()),
                   "total_capacity_gpu_hours": _r(cap[q].sum())}
            for q, prov in enumerate(pr.providers)}


def per_cluster(plan: Plan, pr: Problem) -> list[dict[str, Any]]:
    use = plan.use_cp
    return [{"cluster": name, "provider": pr.providers[int(pr.provider_of[c])], "gpu": pr.gpu_of[c],
             "list_price_per_gpu_hour": float(pr.list_price[c]), "gpu_hours": _list(use[c]),
             "capacity_gpu_hours": _list(pr.capacity[c]),
             "utilization": _r(use[c].sum() / pr.capacity[c].sum(), 4) if pr.capacity[c].sum() else 0.0}
            for c, name in enumerate(pr.clusters)]


def per_stream(plan: Plan, pr: Problem) -> list[dict[str, Any]]:
    st = pr.streams
    got = plan.delivered()
    by_q = np.array([plan.usage[:, pr.provider_of == q, :].sum(axis=(1, 2)) for q in range(len(pr.providers))])
    asked = st.asked()
    rows = []
    for s in range(st.n):
        unmet = plan.unmet_budget[s] if st.is_training[s] else plan.unmet[s].sum()
        rows.append({"stream": st.names[s], "workload": st.workloads[s], "kind": st.kinds[s],
                     "asked_gpu_hours": _r(asked[s]), "delivered_gpu_hours": _r(got[s].sum()),
                     "unmet_gpu_hours": _r(unmet), "gpu_hours": _r(plan.usage[s].sum()),
                     "gpu_hours_by_provider": {pr.providers[q]: _r(by_q[q, s]) for q in range(len(pr.providers))
                                               if by_q[q, s] > 0}})
    return rows


def unmet_doc(plan: Plan, pr: Problem) -> dict[str, Any]:
    """Unmet demand in reference GPU-hours. A training budget's shortfall is shown in its window's last period."""
    st = pr.streams
    by_period = plan.unmet.copy()
    for s in np.nonzero(st.is_training & (plan.unmet_budget > 0))[0]:
        last = np.nonzero(st.window[s])[0][-1]
        by_period[s, last] += plan.unmet_budget[s]
    total = by_period.sum()
    return {"total_gpu_hours": _r(total), "penalty_usd_per_gpu_hour": pr.unmet_penalty,
            "penalty_usd": _r(total * pr.unmet_penalty, 2), "by_period_gpu_hours": _list(by_period.sum(axis=0)),
            "by_stream": [{"stream": st.names[s], "kind": st.kinds[s], "unmet_gpu_hours": _r(by_period[s].sum()),
                           "by_period_gpu_hours": _list(by_period[s])}
                          for s in range(st.n) if by_period[s].sum() > 0.05]}


def options_doc(plan: Plan, pr: Problem) -> list[dict[str, Any]]:
    return [{"contract": e.contract, "index": e.index, "start": e.start.isoformat(), "gpus_offered": e.gpus,
             "gpus_bought": _r(g, 3), "price_per_gpu_hour": e.price_per_gpu_hour, "cost_usd": _r(e.cost_per_gpu * g, 2)}
            for e, g in zip(pr.billing.options, plan.options_gpus)]


def plan_doc(plan: Plan, pr: Problem) -> dict[str, Any]:
    """The whole plan document (the CLI adds `what_if`, `baselines` and `simulation_check`)."""
    return {
        "scenario": pr.name,
        "start": pr.periods.start.isoformat(),
        "end": pr.periods.end.isoformat(),
        "status": plan.status,
        "objective_usd": _r(plan.objective_usd, 2),
        "dual_bound_usd": _r(plan.dual_bound_usd, 2),
        "gap": plan.gap,
        "solver": {"name": "HiGHS", "version": solver_version(), "problem": "LP",
                   "iterations": plan.iterations},
        "solve_s": round(plan.solve_s, 4),
        "build_s": round(plan.build_s, 4),
        "variables": plan.variables,
        "constraints": plan.constraints,
        "nonzeros": plan.nonzeros,
        "unmet_penalty_usd_per_gpu_hour": pr.unmet_penalty,
        "critical_classes": sorted(pr.critical),
        "n1_fraction": pr.n1_fraction,
        "concentration_limits": [{"class": lim.label, "provider": lim.provider, "max_share": lim.max_share}
                                 for lim in pr.limits],
        "periods": periods_doc(pr),
        "cost": cost_breakdown(plan, pr),
        "per_provider": per_provider(plan, pr),
        "per_cluster": per_cluster(plan, pr),
        "per_contract": per_contract(plan, pr),
        "per_stream": per_stream(plan, pr),
        "options": options_doc(plan, pr),
        "unmet": unmet_doc(plan, pr),
        "shadow_prices": shadow_prices(plan, pr),
        "binding": binding(plan, pr),
    }
