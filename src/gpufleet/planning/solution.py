"""A solved plan as dense arrays in natural units (GPU-hours, USD), with shadow prices read from the duals.

Shadow prices are stated as what one more unit is *worth* (≥ 0 when it would lower the cost):
- capacity: one more GPU-hour on cluster c in period p relaxes its capacity row and, for every provider other
  than c's, the N-1 row's spare capacity; the value is the sum of those duals, then × hours per month;
- a concentration cap: one more percentage point of `max_share` relaxes row (q, p) by 0.01 × the class's total
  GPU-hours in p; the value is dual × that;
- the N-1 fraction: one more point asks 0.01 × the provider's critical GPU-hours more spare capacity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .assemble import Lp
from .model import G, Layout, M
from .problem import ALL, Problem
from .solve import Solution


@dataclass(frozen=True)
class Plan:
    problem: Problem
    status: str
    optimal: bool
    objective_usd: float
    dual_bound_usd: float
    gap: float
    usage: np.ndarray              # [S, C, P] GPU-hours
    unmet: np.ndarray              # [S, P] reference GPU-hours not served (inference, batch)
    unmet_budget: np.ndarray       # [S] reference GPU-hours of a training budget not delivered
    billed: np.ndarray             # [C, P] GPU-hours billed at the period's rate
    covered: np.ndarray            # [K, C, P] GPU-hours covered by pool k
    shortfall_usd: np.ndarray      # [commitments] owed beyond what was drawn
    options_gpus: np.ndarray       # [options] GPUs bought
    capacity_value: np.ndarray     # [C, P] USD one more GPU-hour of capacity would save
    cap_rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]   # limit, provider, period, USD per point
    n1_rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]    # provider, period, USD per point, dual
    gang_value: np.ndarray         # [S, P] USD one more GPU-hour of gang rate would save
    variables: int
    constraints: int
    nonzeros: int
    iterations: int
    build_s: float
    solve_s: float
    solution: Solution | None = None   # the solver's answer as it came (a later re-plan warm-starts from it)

    @property
    def use_cp(self) -> np.ndarray:
        """[C, P] GPU-hours used on each cluster."""
        return self.usage.sum(axis=0)

    def delivered(self) -> np.ndarray:
        """[S, P] reference GPU-hours delivered (speed × GPU-hours)."""
        return np.einsum("scp,sc->sp", self.usage, self.problem.streams.speed)

    def provider_use(self, classes: frozenset[str] = ALL) -> np.ndarray:
        """[Q, P] GPU-hours of `classes` on each provider."""
        pr = self.problem
        u = self.usage[pr.streams.kind_mask(classes)].sum(axis=0)
        return np.array([u[pr.provider_of == q].sum(axis=0) for q in range(len(pr.providers))]
                        ).reshape(len(pr.providers), pr.periods.n)

    def provider_capacity(self) -> np.ndarray:
        pr = self.problem
        return np.array([pr.capacity[pr.provider_of == q].sum(axis=0) for q in range(len(pr.providers))]
                        ).reshape(len(pr.providers), pr.periods.n)


def extract(pr: Problem, lp: Lp, sol: Solution, build_s: float) -> Plan:
    L = lp.layout
    S, C, P = pr.shape
    v = sol.col_value

    x0, xs, xc, xp = L.x
    usage = np.zeros((S, C, P))
    usage[xs, xc, xp] = v[x0:x0 + len(xs)] * G
    u0, us, up = L.unmet
    uv = v[u0:u0 + len(us)] * G
    unmet, unmet_budget = np.zeros((S, P)), np.zeros(S)
    per = up >= 0
    unmet[us[per], up[per]] = uv[per]
    unmet_budget[us[~per]] = uv[~per]
    b0, bc, bp = L.b
    billed = usage.sum(axis=0)                 # every GPU-hour is billed, except where a pool covers it
    billed[bc, bp] = v[b0:b0 + len(bc)] * G
    r0, rk, rc, rp = L.r
    covered = np.zeros((len(pr.billing.pools), C, P))
    covered[rk, rc, rp] = v[r0:r0 + len(rk)] * G
    shortfall = v[L.short:L.short + len(pr.billing.commitments)] * M
    options = v[L.opt:L.opt + len(pr.billing.options)]

    capacity_value, cap_rows, n1_rows, gang_value = _shadow(pr, L, v, sol.row_dual)

    return Plan(
        problem=pr, status=sol.status, optimal=sol.optimal, objective_usd=sol.objective_usd,
        dual_bound_usd=sol.dual_bound_usd, gap=sol.gap, usage=usage, unmet=unmet, unmet_budget=unmet_budget,
        billed=billed, covered=covered, shortfall_usd=shortfall, options_gpus=options,
        capacity_value=capacity_value, cap_rows=cap_rows, n1_rows=n1_rows, gang_value=gang_value,
        variables=lp.n_cols, constraints=lp.n_rows, nonzeros=int(lp.matrix.nnz), iterations=sol.iterations,
        build_s=build_s, solve_s=sol.solve_s, solution=sol)


def _shadow(pr: Problem, L: Layout, v: np.ndarray, rd: np.ndarray):
    """Values of one more unit (USD, ≥ 0) from the row duals: capacity, caps, N-1 (a cost), training gangs."""
    S, C, P = pr.shape
    Q = len(pr.providers)

    # capacity: its own row plus the N-1 rows of every other provider (where it is spare capacity)
    d_cap = np.zeros((C, P))
    cap0, cc, cp = L.capacity
    d_cap[cc, cp] = rd[cap0:cap0 + len(cc)]
    n0, nq, np_ = L.n1
    n1_dual = rd[n0:n0 + len(nq)]
    d_n1 = np.zeros((Q, P))
    d_n1[nq, np_] = n1_dual
    d_cap += d_n1.sum(axis=0)[None, :] - d_n1[pr.provider_of]
    capacity_value = np.maximum(0.0, -d_cap * M / G)
    y0, groups = L.y
    y = v[y0:y0 + len(groups) * Q * P].reshape(len(groups), Q, P) if groups else np.zeros((0, Q, P))
    l0, ll, lq, lp_ = L.cap
    cap_val = np.zeros(len(ll))
    if len(ll):
        g = np.array([groups.index(pr.limits[i].classes) for i in ll], np.int64)
        cap_val = -rd[l0:l0 + len(ll)] * 0.01 * y[g, :, lp_].sum(axis=1) * M
    n1_val = np.zeros(len(nq))
    if len(nq):
        gc = groups.index(pr.critical)
        n1_val = -n1_dual * 0.01 * y[gc, nq, np_] * M
    g0, gs, gp = L.gang
    gang_value = np.zeros((S, P))
    gang_value[gs, gp] = np.maximum(0.0, -rd[g0:g0 + len(gs)] * M / G)
    return (capacity_value, (ll, lq, lp_, np.maximum(0.0, cap_val)),
            (nq, np_, np.maximum(0.0, n1_val), n1_dual), gang_value)
