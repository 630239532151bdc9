"""From a solved plan to the guide the online engine follows (`placement/guide.py`), and re-planning on a
schedule: the simulator calls a `Replanner` at each period start, the live server on demand and on its
own schedule. Both plan from the time they are at to the end of their horizon with the same LP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from ..model.scenario import Portfolio
from ..model.workloads import TrainingWorkload
from ..placement.guide import Gang, Grid, Guide
from ..placement.state import to_date, to_seconds
from .periods import add_months
from .planner import solve_problem
from .problem import DEFAULT_UNMET_PENALTY, build_problem
from .solution import Plan
from .solve import Clock

REPLAN = ("off", "monthly", "quarterly", "once")
MONTHS = {"monthly": 1, "quarterly": 3}


def _grid(a: np.ndarray) -> Grid:
    """[C, P] → per period, per cluster."""
    return tuple(tuple(float(x) for x in row) for row in a.T)


HOLD_LEAD_S = 21_600.0   # room for a gang is held from 6 h before its first run: work of a few hours drains out


def gangs_of(portfolio: Portfolio) -> dict[str, Gang]:
    """The portfolio's gang workloads (training runs): GPUs one run holds, its priority, when to hold from."""
    return {w.name: Gang(w.gpus, w.tp, w.priority, to_seconds(w.start) - HOLD_LEAD_S)
            for w in portfolio.workloads if isinstance(w, TrainingWorkload)}


def guide_of(plan: Plan, made_at_s: float = 0.0, label: str = "",
             gangs: dict[str, Gang] | None = None) -> Guide:
    """The plan's GPUs per workload, class and cluster (average over each period) and its capacity prices;
    `gangs` (from `gangs_of`): the gang workloads whose runs the engine keeps room for."""
    pr = plan.problem
    hours = np.asarray(pr.periods.hours, float)
    gpus = plan.usage / np.maximum(hours, 1e-9)[None, None, :]           # [S, C, P] average GPUs
    st = pr.streams
    workloads: dict[str, np.ndarray] = {}
    kinds: dict[str, np.ndarray] = {}
    classes: dict[str, str] = {}                 # the rows requests name (not a service's total) -> class
    for s in range(st.n):
        w, k = st.workloads[s], st.kinds[s]
        workloads[w] = workloads.get(w, 0.0) + gpus[s]
        kinds[k] = kinds.get(k, 0.0) + gpus[s]
        classes[st.names[s]] = k
        if st.names[s] != w:      # a service in one region ("chat@us-east-1"): its replicas follow this row
            workloads[st.names[s]] = gpus[s]
    bounds = tuple(to_seconds(d) for d in pr.periods.bounds)
    return Guide(bounds_s=bounds, clusters=tuple(pr.clusters),
                 workloads={w: _grid(g) for w, g in workloads.items()},
                 kinds={k: _grid(g) for k, g in kinds.items()}, value=_grid(plan.capacity_value),
                 made_at_s=made_at_s, label=label,
                 gangs={w: v for w, v in (gangs or {}).items() if w in workloads},
                 held={w: _whole_runs(workloads[w], v.gpus) for w, v in (gangs or {}).items() if w in workloads},
                 classes=classes)


def _whole_runs(gpus: np.ndarray, size: int) -> Grid:
    """[C, P] average GPUs of a gang workload → per period and cluster, the GPUs of the whole runs to hold:
    as many runs as the plan's total rounds to, on the clusters it gives the most of them (a fractional
    plan that splits one run over two clusters holds it once, where the larger part is)."""
    out = np.zeros_like(gpus)
    for p in range(gpus.shape[1]):
        col = gpus[:, p] / size
        runs = int(np.floor(col.sum() + 0.5))
        whole = np.floor(col + 1e-9)
        left = runs - int(whole.sum())
        if left > 0:
            for c in np.argsort(-(col - whole), kind="stable")[:left]:
                whole[c] += 1
        elif left < 0:
            whole[:] = 0
            for c in np.argsort(-col, kind="stable")[:runs]:
                whole[c] = 1
        out[:, p] = whole * size
    return _grid(out)


@dataclass
class Replanner:
    """Plans `portfolio` from a time to `until_s` and returns the guide; records each plan's inputs and
    result. `every`: monthly, quarterly, or once (one plan at the start)."""

    portfolio: Portfolio
    until_s: float
    every: str = "monthly"
    unmet_penalty: float = DEFAULT_UNMET_PENALTY
    clock: Clock | None = None

    def __post_init__(self) -> None:
        if self.every not in REPLAN or self.every == "off":
            raise ValueError(f"replan: expected one of {', '.join(REPLAN[1:])}, found {self.every!r}")
        self.log: list[dict] = []
        self._last: Plan | None = None      # the previous plan: the next one warm-starts from it

    def times(self, start_s: float) -> list[float]:
        """When to plan: at the start, then at each period boundary before `until_s`."""
        if self.every == "once":
            return [start_s]
        out, d = [start_s], _next_month_start(to_date(start_s), MONTHS[self.every])
        while to_seconds(d) < self.until_s:
            out.append(to_seconds(d))
            d = add_months(d, MONTHS[self.every])
        return out

    def plan(self, now_s: float) -> Guide | None:
        start, end = to_date(now_s), to_date(self.until_s)
        if end <= start:
            return None
        if to_seconds(end) < self.until_s:       # a horizon ending mid-day plans its whole last day
            end = date.fromordinal(end.toordinal() + 1)
        t0 = self.clock() if self.clock else 0.0
        pr = build_problem(self.portfolio, start, end, unmet_penalty=self.unmet_penalty)
        result = solve_problem(pr, start=self._last)
        self._last = result
        took = (self.clock() - t0) if self.clock else 0.0
        self.log.append({"at": start.isoformat(), "to": end.isoformat(), "status": result.status,
                         "objective_usd": round(result.objective_usd, 2), "gap": result.gap,
                         "variables": result.variables, "iterations": result.iterations,
                         "wall_s": round(took, 3)})
        return guide_of(result, now_s, f"plan {start.isoformat()}..{end.isoformat()}", gangs_of(self.portfolio))


def _next_month_start(d: date, n: int) -> date:
    """The first of the month n months after `d`'s."""
    return add_months(date(d.year, d.month, 1), n)
