"""What-ifs: variants of a planning problem, and how their plans differ from the base plan.

    drop:PROVIDER          the provider's clusters have no capacity (its contracts are still owed)
    delay:CLUSTER:N        the cluster's ramp arrives N months later (a constant cluster: N months after the start)
    demand:CLASS:FACTOR    scale the demand of a class (training, inference, batch), of one workload by name,
                           or of everything (`*`)
    cap:CLASS:SHARE        set (or add) the concentration cap of a class (training, inference, batch, all) for
                           every provider; SHARE is a fraction (0.5) or a percentage (50%)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np

from .accounts import wasted_usd
from .demand import KINDS
from .periods import add_months
from .problem import ALL, Limit, Problem, Ramp, ramp_capacity
from .solution import Plan

MAX_DELAY_MONTHS = 1200
KINDS_WHATIF = ("drop", "delay", "demand", "cap")


class WhatIfError(ValueError):
    """A what-if spec that cannot be applied; the message says what was expected."""


@dataclass(frozen=True)
class WhatIf:
    spec: str
    kind: str
    target: str
    value: float = 0.0


def _number(text: str, spec: str, what: str) -> float:
    try:
        x = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise WhatIfError(f"{spec!r}: {what} must be a number, found {text!r}") from None
    if not math.isfinite(x):
        raise WhatIfError(f"{spec!r}: {what} must be finite, found {text!r}")
    return x


def parse_what_if(spec: str, pr: Problem) -> WhatIf:
    """Read one spec against the problem (names are checked); raise WhatIfError with a clear message."""
    kind, _, rest = spec.strip().partition(":")
    if kind not in KINDS_WHATIF:
        raise WhatIfError(f"{spec!r}: unknown what-if {kind!r}; expected drop:PROVIDER, delay:CLUSTER:N, "
                          "demand:CLASS:FACTOR or cap:CLASS:SHARE")
    # names may contain ':', so the value is whatever follows the last one
    parts = [kind, rest] if kind == "drop" else [kind, *rest.rpartition(":")[::2]]
    if not all(parts) or (kind != "drop" and ":" not in rest):
        form = {"drop": "drop:PROVIDER", "delay": "delay:CLUSTER:N", "demand": "demand:CLASS:FACTOR",
                "cap": "cap:CLASS:SHARE"}[kind]
        raise WhatIfError(f"{spec!r}: expected {form}")
    target = parts[1]
    if kind == "drop":
        if target not in pr.providers:
            raise WhatIfError(f"{spec!r}: unknown provider {target!r}; expected one of {', '.join(pr.providers)}")
        return WhatIf(spec, kind, target)
    if kind == "delay":
        if target not in pr.clusters:
            raise WhatIfError(f"{spec!r}: unknown cluster {target!r}; expected one of {', '.join(pr.clusters)}")
        n = _number(parts[2], spec, "N (months)")
        if n != int(n) or not 0 <= n <= MAX_DELAY_MONTHS:
            raise WhatIfError(f"{spec!r}: N must be a whole number of months from 0 to {MAX_DELAY_MONTHS}")
        return WhatIf(spec, kind, target, n)
    if kind == "demand":
        names = set(pr.streams.workloads)
        if target != "*" and target not in KINDS and target not in names:
            raise WhatIfError(f"{spec!r}: {target!r} is not a workload class ({', '.join(KINDS)}), '*' or a "
                              f"workload of this scenario")
        f = _number(parts[2], spec, "FACTOR")
        if f < 0:
            raise WhatIfError(f"{spec!r}: FACTOR must be 0 or more")
        return WhatIf(spec, kind, target, f)
    if target not in KINDS + ("all",):
        raise WhatIfError(f"{spec!r}: unknown class {target!r}; expected training, inference, batch or all")
    share = _number(parts[2], spec, "SHARE")
    if not 0 < share <= 1:
        raise WhatIfError(f"{spec!r}: SHARE must be in (0, 1] (or 1%..100%)")
    return WhatIf(spec, kind, target, share)


def _delay(pr: Problem, w: WhatIf) -> Problem:
    c = pr.clusters.index(w.target)
    months = int(w.value)
    start = pr.periods.start
    old = pr.ramps[c]
    days = tuple(add_months(max(date.fromordinal(d), start), months).toordinal() for d in old.days)
    ramps = pr.ramps[:c] + (Ramp(days, old.gpus),) + pr.ramps[c + 1:]
    cap = pr.capacity.copy()
    cap[c] = ramp_capacity((ramps[c],), pr.periods)[0]
    return replace(pr, ramps=ramps, capacity=cap)


def _demand(pr: Problem, w: WhatIf) -> Problem:
    st = pr.streams
    if w.target == "*":
        hit = np.ones(st.n, bool)
    elif w.target in KINDS:
        hit = st.kind_mask(frozenset([w.target]))
    else:
        hit = np.array([n == w.target for n in st.workloads], bool)
    scale = np.where(hit, w.value, 1.0)
    return replace(pr, streams=replace(st, demand=st.demand * scale[:, None], budget=st.budget * scale))


def _cap(pr: Problem, w: WhatIf) -> Problem:
    classes = ALL if w.target == "all" else frozenset([w.target])
    new = Limit(w.target, classes, None, w.value)
    kept = tuple(lim for lim in pr.limits if not (lim.label == w.target and lim.provider is None))
    return replace(pr, limits=kept + (new,))


def apply_what_if(pr: Problem, w: WhatIf) -> Problem:
    if w.kind == "drop":
        cap = pr.capacity.copy()
        cap[pr.provider_mask(w.target)] = 0.0
        return replace(pr, capacity=cap)
    if w.kind == "delay":
        return _delay(pr, w)
    if w.kind == "demand":
        return _demand(pr, w)
    return _cap(pr, w)


def _totals(plan: Plan) -> tuple[float, float, dict[str, float]]:
    pr = plan.problem
    unmet = float(plan.unmet.sum() + plan.unmet_budget.sum())
    use = plan.provider_use().sum(axis=1)
    return unmet, wasted_usd(plan, pr), {q: float(use[i]) for i, q in enumerate(pr.providers)}


def compare(spec: str, base: Plan, variant: Plan) -> dict[str, Any]:
    """The variant's headline figures and their differences from the base plan."""
    bu, bw, bq = _totals(base)
    vu, vw, vq = _totals(variant)
    r = lambda x, nd=1: round(float(x), nd) + 0.0  # noqa: E731
    return {"spec": spec, "status": variant.status, "objective_usd": r(variant.objective_usd, 2),
            "delta_usd": r(variant.objective_usd - base.objective_usd, 2),
            "unmet_gpu_hours": r(vu), "delta_unmet_gpu_hours": r(vu - bu),
            "wasted_usd": r(vw, 2), "delta_wasted_usd": r(vw - bw, 2),
            "gpu_hours_by_provider": {q: r(v) for q, v in vq.items()},
            "delta_gpu_hours_by_provider": {q: r(vq[q] - bq.get(q, 0.0)) for q in vq}}
