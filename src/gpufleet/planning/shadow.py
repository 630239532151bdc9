"""Shadow prices and binding constraints, as the `shadow_prices` and `binding` parts of the plan document.

Every figure is a value in USD that a relaxation would save (≥ 0): one more GPU-month of capacity on a cluster,
one more percentage point of a concentration cap, one more GPU-hour per period for a training gang. The N-1
figure is a cost instead: what one more point of `n1_fraction` would add.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .problem import Problem
from .solution import Plan

BINDING_USD = 1e-6       # a row whose shadow price is below this is not binding
TOP = 20


def _r(x: float, nd: int = 2) -> float:
    return round(float(x), nd) + 0.0   # no negative zeros in the document


def gpu_month_value(plan: Plan, pr: Problem) -> np.ndarray:
    """[C, P] USD one more GPU for one month would save (GPU-hour value × hours per month of the period)."""
    per_month = pr.periods.hours / np.asarray(pr.periods.months, float)
    return plan.capacity_value * per_month[None, :]


def capacity_prices(plan: Plan, pr: Problem) -> list[dict[str, Any]]:
    v = gpu_month_value(plan, pr)
    rows = []
    for c, name in enumerate(pr.clusters):
        live = pr.capacity[c] > 0
        rows.append({"cluster": name, "provider": pr.providers[int(pr.provider_of[c])],
                     "usd_per_gpu_month_max": _r(v[c].max(initial=0.0)),
                     "usd_per_gpu_month_mean": _r(v[c][live].mean() if live.any() else 0.0),
                     "binding_periods": int((v[c] > BINDING_USD).sum()),
                     "usd_per_gpu_month": [_r(x) for x in v[c]]})
    return rows


def cap_prices(plan: Plan, pr: Problem) -> list[dict[str, Any]]:
    ll, lq, lp, val = plan.cap_rows
    rows = []
    for i, lim in enumerate(pr.limits):
        mine = ll == i
        by_provider = {pr.providers[int(q)]: _r(val[mine & (lq == q)].sum()) for q in np.unique(lq[mine])}
        by_period = np.zeros(pr.periods.n)
        np.add.at(by_period, lp[mine], val[mine])
        rows.append({"class": lim.label, "provider": lim.provider, "max_share": lim.max_share,
                     "saves_usd_per_point": _r(val[mine].sum()),
                     "binding_periods": int((by_period > BINDING_USD).sum()),
                     "by_provider": by_provider, "by_period_usd": [_r(x) for x in by_period]})
    return rows


def n1_price(plan: Plan, pr: Problem) -> dict[str, Any]:
    nq, npp, val, _ = plan.n1_rows
    by_provider = {pr.providers[int(q)]: _r(val[nq == q].sum()) for q in np.unique(nq)}
    by_period = np.zeros(pr.periods.n)
    np.add.at(by_period, npp, val)
    return {"critical_classes": sorted(pr.critical), "n1_fraction": pr.n1_fraction,
            "costs_usd_per_point": _r(val.sum()), "binding_periods": int((by_period > BINDING_USD).sum()),
            "by_lost_provider": by_provider}


def shadow_prices(plan: Plan, pr: Problem) -> dict[str, Any]:
    gang = plan.gang_value
    per_month = pr.periods.hours / np.asarray(pr.periods.months, float)
    st = pr.streams
    return {"capacity": capacity_prices(plan, pr), "concentration_caps": cap_prices(plan, pr),
            "n1": n1_price(plan, pr),
            "training_gang": [{"stream": st.names[s], "usd_per_gpu_month_max": _r((gang[s] * per_month).max()),
                               "binding_periods": int((gang[s] > BINDING_USD).sum())}
                              for s in np.nonzero(st.is_training)[0]]}


def binding(plan: Plan, pr: Problem) -> dict[str, Any]:
    """How many rows of each kind bind, and the `TOP` most valuable ones."""
    labels = pr.periods.labels
    v = gpu_month_value(plan, pr)
    items: list[dict[str, Any]] = []
    for c, p in np.argwhere(v > BINDING_USD):
        items.append({"constraint": "capacity", "cluster": pr.clusters[c], "period": labels[p],
                      "usd_per_gpu_month": _r(v[c, p])})
    ll, lq, lp, val = plan.cap_rows
    for i in np.nonzero(val > BINDING_USD)[0]:
        lim = pr.limits[int(ll[i])]
        items.append({"constraint": "concentration_cap", "class": lim.label, "provider": pr.providers[int(lq[i])],
                      "period": labels[int(lp[i])], "max_share": lim.max_share, "usd_per_point": _r(val[i])})
    nq, npp, nval, ndual = plan.n1_rows
    for i in np.nonzero(ndual < -1e-12)[0]:
        items.append({"constraint": "n1", "lost_provider": pr.providers[int(nq[i])], "period": labels[int(npp[i])],
                      "usd_per_point": _r(nval[i])})
    for s, p in np.argwhere(plan.gang_value > BINDING_USD):
        items.append({"constraint": "training_gang", "stream": pr.streams.names[s], "period": labels[p],
                      "usd_per_gpu_hour": _r(plan.gang_value[s, p], 4)})
    counts: dict[str, int] = {}
    for it in items:
        counts[it["constraint"]] = counts.get(it["constraint"], 0) + 1

    def worth(it: dict[str, Any]) -> float:
        return float(it.get("usd_per_gpu_month", it.get("usd_per_point", it.get("usd_per_gpu_hour", 0.0))))
    return {"counts": counts, "top": sorted(items, key=worth, reverse=True)[:TOP]}
