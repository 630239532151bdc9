"""The linear program, built in bulk: every block of columns and rows is a few numpy operations, and the
constraint matrix is one COO → CSC conversion. No Python loop runs per coefficient.

Columns (units: GPU-hours / G, dollars / M; see `G`, `M`):
    x[s,c,p]   GPU-hours of stream s on cluster c in period p (only where s may run and c has capacity)
    unmet      reference GPU-hours of demand not served: one per (stream, period), one per training budget
    b[c,p]     GPU-hours on c not covered by a pool, billed at the period's rate (commitment, on demand, list)
    r[k,c,p]   GPU-hours on c covered by pool k (a reservation, plus any expansion GPUs bought)
    short[k]   take-or-pay shortfall of commitment k (dollars owed beyond what was drawn)
    opt[e]     GPUs bought of expansion option e
    y[g,q,p]   GPU-hours of class group g on provider q (aggregates for caps and N-1)
Rows:
    capacity   Σ_s x[s,c,p] ≤ capacity[c,p]
    billing    Σ_s x[s,c,p] − Σ_k r[k,c,p] − b[c,p] = 0
    pool       Σ_c r[k,c,p] − cover[e,p]·opt[e] ≤ reserved GPU-hours[k,p]
    demand     Σ_c speed[s,c]·x[s,c,p] + unmet = asked          (training: summed over its window)
    gang       Σ_c x[s,c,p] ≤ gpus × hours                      (training: one gang at a time)
    commit     short[k] + Σ rate·b ≥ commitment in the plan     (take-or-pay: cost = max(commitment, drawn))
    aggregate  y[g,q,p] − Σ x of g on q = 0
    cap        y[g,q,p] − share·Σ_q' y[g,q',p] ≤ 0
    n1         Σ_{q'≠q} y[all,q',p] + f·y[critical,q,p] ≤ Σ_{c∉q} capacity[c,p]
Objective: reserved (fixed) + Σ rate·b + Σ short + Σ option cost + penalty·Σ unmet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from .problem import ALL, Problem

G = 1e3      # GPU-hours per LP unit: keeps capacities of 10^8 GPU-hours near 10^5
M = 1e6      # dollars per objective unit
INF = np.inf


@dataclass(frozen=True)
class BuildOptions:
    objective: Literal["contracts", "list_price"] = "contracts"
    caps: bool = True
    n1: bool = True
    allow: np.ndarray | None = None         # [S, C] further restriction of where streams may run
    fixed_x: np.ndarray | None = None       # [S, C, P] GPU-hours: price this allocation instead of choosing one


@dataclass(frozen=True)
class Layout:
    """Where each block of columns and rows sits, with the indices that name its members."""

    x: tuple[int, np.ndarray, np.ndarray, np.ndarray]              # offset, s, c, p
    unmet: tuple[int, np.ndarray, np.ndarray]                      # offset, s, p (-1: a training budget)
    b: tuple[int, np.ndarray, np.ndarray]                          # offset, c, p (also the billing rows)
    r: tuple[int, np.ndarray, np.ndarray, np.ndarray]              # offset, pool, c, p
    short: int
    opt: int
    y: tuple[int, tuple[frozenset[str], ...]]                      # offset, groups; index (g*Q + q)*P + p
    capacity: tuple[int, np.ndarray, np.ndarray]                   # row offset, c, p
    billing: int
    pool: tuple[int, np.ndarray, np.ndarray]                       # row offset, pool, p
    demand: int                                                    # rows align with the unmet columns
    gang: tuple[int, np.ndarray, np.ndarray]                       # row offset, s, p
    commit: int
    aggregate: int
    cap: tuple[int, np.ndarray, np.ndarray, np.ndarray]            # row offset, limit, provider, p
    n1: tuple[int, np.ndarray, np.ndarray]                         # row offset, provider, p


@dataclass(frozen=True)
class Lp:
    cost: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray
    matrix: sp.csc_matrix
    offset: float
    layout: Layout

    @property
    def n_cols(self) -> int:
        return len(self.cost)

    @property
    def n_rows(self) -> int:
        return len(self.row_lo)


class _Assembler:
    """Appends blocks of columns, rows and coefficients; one conversion to CSC at the end."""

    def __init__(self) -> None:
        self.cost: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.rlo: list[np.ndarray] = []
        self.rhi: list[np.ndarray] = []
        self.ri: list[np.ndarray] = []
        self.ci: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.ncol = self.nrow = 0

    def cols(self, cost, lo, hi) -> int:
        n, at = len(cost), self.ncol
        self.cost.append(np.asarray(cost, float))
        self.lo.append(np.broadcast_to(np.asarray(lo, float), (n,)))
        self.hi.append(np.broadcast_to(np.asarray(hi, float), (n,)))
        self.ncol += n
        return at

    def rows(self, lo, hi, n: int) -> int:
        at = self.nrow
        self.rlo.append(np.broadcast_to(np.asarray(lo, float), (n,)))
        self.rhi.append(np.broadcast_to(np.asarray(hi, float), (n,)))
        self.nrow += n
        return at

    def coef(self, r, c, v) -> None:
        r = np.asarray(r, np.int64)
        self.ri.append(r)
        self.ci.append(np.asarray(c, np.int64))
        self.v.append(np.broadcast_to(np.asarray(v, float), r.shape))

    def lp(self, offset: float, layout: Layout) -> Lp:
        cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0))
        a = sp.coo_matrix((cat(self.v), (cat(self.ri).astype(np.int64), cat(self.ci).astype(np.int64))),
                          shape=(self.nrow, self.ncol)).tocsc()
        a.sum_duplicates()
        return Lp(cat(self.cost), cat(self.lo).copy(), cat(self.hi).copy(), cat(self.rlo).copy(),
                  cat(self.rhi).copy(), a, offset, layout)


def _groups(pr: Problem, o: BuildOptions) -> tuple[frozenset[str], ...]:
    want: list[frozenset[str]] = []
    if o.caps:
        want += [lim.classes for lim in pr.limits]
    if _n1_on(pr, o):
        want += [ALL, pr.critical]
    return tuple(dict.fromkeys(want))


def _n1_on(pr: Problem, o: BuildOptions) -> bool:
    return o.n1 and pr.n1_fraction > 0 and bool(pr.critical) and len(pr.providers) > 1


def build_lp(pr: Problem, o: BuildOptions = BuildOptions()) -> Lp:
    st, bl = pr.streams, pr.billing
    S, C, P = pr.shape
    Q = len(pr.providers)
    A = _Assembler()
    list_obj = o.objective == "list_price"

    # 1. x: where each stream may run, in periods where it asks and the cluster has capacity
    elig = st.eligible if o.allow is None else st.eligible & o.allow
    mask = elig[:, :, None] & st.window[:, None, :] & (pr.capacity > 0)[None, :, :]
    xs, xc, xp = np.nonzero(mask)
    fixed = o.fixed_x is not None
    if fixed:   # pricing a given allocation: x is fixed, and rows on x alone may not reject it over rounding
        xv = np.clip(o.fixed_x[xs, xc, xp], 0.0, None) / G
        x0 = A.cols(np.zeros(len(xs)), xv, xv)
    else:
        x0 = A.cols(pr.list_price[xc] * G / M if list_obj else np.zeros(len(xs)), 0.0, INF)
    xi = x0 + np.arange(len(xs))

    # 2. unmet demand: one column per (stream, period) asked, one per training budget
    per = ~st.is_training[:, None] & (st.demand > 0)
    us, up = np.nonzero(per)
    ts = np.nonzero(st.is_training & (st.budget > 0))[0]
    us, up = np.concatenate([us, ts]), np.concatenate([up, np.full(len(ts), -1)])
    u0 = A.cols(np.full(len(us), pr.unmet_penalty * G / M), -INF if fixed else 0.0, INF)

    # 3. billed usage and the billing identity, per cell (c, p) that has x
    cell = np.zeros((C, P), bool)
    cell[xc, xp] = True
    bc, bp = np.nonzero(cell)
    cell_id = np.full((C, P), -1, np.int64)
    cell_id[bc, bp] = np.arange(len(bc))
    b0 = A.cols(np.zeros(len(bc)) if list_obj else bl.rate[bc, bp] * G / M, 0.0, INF)
    cap_hi = pr.capacity[bc, bp] / G
    if fixed:
        cap_hi = np.maximum(cap_hi, np.bincount(cell_id[xc, xp], weights=xv, minlength=len(bc)))
    cap0 = A.rows(-INF, cap_hi, len(bc))
    A.coef(cap0 + cell_id[xc, xp], xi, 1.0)
    bill0 = A.rows(0.0, 0.0, len(bc))
    A.coef(bill0 + cell_id[xc, xp], xi, 1.0)
    A.coef(bill0 + np.arange(len(bc)), b0 + np.arange(len(bc)), -1.0)

    # 4. pools (reservations and bought options) cover usage at no marginal cost
    covers = np.zeros((len(bl.pools), P))
    for e in bl.options:
        covers[e.pool] += e.cover_hours
    trip = [np.zeros((0, 3), np.int64)]          # (pool, cluster, period) of each r column
    for k, pool in enumerate(bl.pools):
        live = (pool.base_hours > 0) | (covers[k] > 0)
        cl = np.array(pool.clusters, np.int64)
        cc, pp = np.nonzero(live[None, :] & cell[cl])
        trip.append(np.column_stack([np.full(len(cc), k), cl[cc], pp]))
    rk_, rc_, rp_ = np.concatenate(trip).T
    r0 = A.cols(np.zeros(len(rk_)), 0.0, INF)
    A.coef(bill0 + cell_id[rc_, rp_], r0 + np.arange(len(rk_)), -1.0)
    pk, pp_ = np.nonzero(_used(rk_, rp_, len(bl.pools), P))
    pool_id = np.full((len(bl.pools), P), -1, np.int64)
    pool_id[pk, pp_] = np.arange(len(pk))
    base = np.array([p.base_hours for p in bl.pools]).reshape(len(bl.pools), P)
    pool0 = A.rows(-INF, base[pk, pp_] / G, len(pk))
    A.coef(pool0 + pool_id[rk_, rp_], r0 + np.arange(len(rk_)), 1.0)

    # 5. take-or-pay shortfall per commitment, expansion options
    s0 = A.cols(np.zeros(len(bl.commitments)) if list_obj else np.ones(len(bl.commitments)), 0.0, INF)
    e0 = A.cols(np.array([0.0 if list_obj else e.cost_per_gpu / M for e in bl.options]),
                0.0, np.array([float(e.gpus) for e in bl.options]))
    for i, e in enumerate(bl.options):
        ps = np.nonzero((e.cover_hours > 0) & (pool_id[e.pool] >= 0))[0]
        A.coef(pool0 + pool_id[e.pool, ps], np.full(len(ps), e0 + i), -e.cover_hours[ps] / G)
    com0 = A.rows(np.array([k.window_usd / M for k in bl.commitments]), INF, len(bl.commitments))
    A.coef(com0 + np.arange(len(bl.commitments)), s0 + np.arange(len(bl.commitments)), 1.0)
    billed = bl.commit[bc, bp] >= 0
    A.coef(com0 + bl.commit[bc, bp][billed], b0 + np.nonzero(billed)[0], bl.rate[bc, bp][billed] * G / M)

    # 6. demand: per (stream, period) rows and training budgets; unmet columns align with these rows
    asked = np.where(up >= 0, st.demand[us, np.maximum(up, 0)], st.budget[us]) / G
    dem0 = A.rows(asked, asked, len(us))
    A.coef(dem0 + np.arange(len(us)), u0 + np.arange(len(us)), 1.0)
    dem_id = np.full((S, P), -1, np.int64)
    dem_id[us[up >= 0], up[up >= 0]] = np.nonzero(up >= 0)[0]
    train_id = np.full(S, -1, np.int64)
    train_id[us[up < 0]] = np.nonzero(up < 0)[0]
    xrow = np.where(st.is_training[xs], train_id[xs], dem_id[xs, xp])
    A.coef(dem0 + xrow, xi, st.speed[xs, xc])

    # 7. one gang at a time: a training stream's GPU-hours per period
    gcell = np.zeros((S, P), bool)
    tx = st.is_training[xs]
    gcell[xs[tx], xp[tx]] = True
    gs, gp = np.nonzero(gcell & np.isfinite(st.rate_cap))
    gang_id = np.full((S, P), -1, np.int64)
    gang_id[gs, gp] = np.arange(len(gs))
    gx = gang_id[xs, xp] >= 0
    gang_hi = st.rate_cap[gs, gp] / G
    if fixed:
        gang_hi = np.maximum(gang_hi, np.bincount(gang_id[xs[gx], xp[gx]], weights=xv[gx], minlength=len(gs)))
    gang0 = A.rows(-INF, gang_hi, len(gs))
    A.coef(gang0 + gang_id[xs[gx], xp[gx]], xi[gx], 1.0)

    # 8. aggregates per class group and provider, concentration caps, N-1
    groups = _groups(pr, o)
    y0 = A.cols(np.zeros(len(groups) * Q * P), 0.0, INF)
    agg0 = A.rows(0.0, 0.0, len(groups) * Q * P)
    A.coef(agg0 + np.arange(len(groups) * Q * P), y0 + np.arange(len(groups) * Q * P), 1.0)
    qx = pr.provider_of[xc]
    for g, classes in enumerate(groups):
        m = st.kind_mask(classes)[xs]
        A.coef(agg0 + (g * Q + qx[m]) * P + xp[m], xi[m], -1.0)
    cap_rows = _caps(A, pr, o, groups, y0) if o.caps else (A.nrow, *(np.zeros(0, np.int64),) * 3)
    n1_rows = _n1(A, pr, groups, y0) if _n1_on(pr, o) else (A.nrow, np.zeros(0, np.int64), np.zeros(0, np.int64))

    layout = Layout(x=(x0, xs, xc, xp), unmet=(u0, us, up), b=(b0, bc, bp), r=(r0, rk_, rc_, rp_), short=s0,
                    opt=e0, y=(y0, groups), capacity=(cap0, bc, bp), billing=bill0, pool=(pool0, pk, pp_),
                    demand=dem0, gang=(gang0, gs, gp), commit=com0, aggregate=agg0, cap=cap_rows, n1=n1_rows)
    return A.lp(0.0 if list_obj else bl.fixed_usd / M, layout)


def _used(k: np.ndarray, p: np.ndarray, K: int, P: int) -> np.ndarray:
    out = np.zeros((K, P), bool)
    out[k, p] = True
    return out


def _caps(A: _Assembler, pr: Problem, o: BuildOptions, groups, y0: int):
    Q, P = len(pr.providers), pr.periods.n
    ls, qs = [], []
    for li, lim in enumerate(pr.limits):
        targets = range(Q) if lim.provider is None else (
            [pr.providers.index(lim.provider)] if lim.provider in pr.providers else [])
        for q in targets:
            ls.append(li), qs.append(q)
    n = len(ls) * P
    at = A.rows(-INF, 0.0, n)
    rl = np.repeat(np.array(ls, np.int64), P)
    rq = np.repeat(np.array(qs, np.int64), P)
    rp = np.tile(np.arange(P), len(ls))
    share = np.array([pr.limits[i].max_share for i in rl])
    g = np.array([groups.index(pr.limits[i].classes) for i in rl], np.int64)
    rows = at + np.arange(n)
    for q2 in range(Q):   # every provider's aggregate enters every row: Q coefficients per row
        A.coef(rows, y0 + (g * Q + q2) * P + rp, np.where(rq == q2, 1.0 - share, -share))
    return at, rl, rq, rp


def _n1(A: _Assembler, pr: Problem, groups, y0: int):
    st = pr.streams
    Q, P = len(pr.providers), pr.periods.n
    crit_elig = st.eligible[st.kind_mask(pr.critical)].any(axis=0)          # [C]
    qs = np.unique(pr.provider_of[crit_elig])
    cap_q = np.array([pr.capacity[pr.provider_of == q].sum(axis=0) for q in range(Q)]).reshape(Q, P)
    n = len(qs) * P
    rq, rp = np.repeat(qs, P), np.tile(np.arange(P), len(qs))
    at = A.rows(-INF, (cap_q.sum(axis=0)[rp] - cap_q[rq, rp]) / G, n)
    rows = at + np.arange(n)
    ga, gc = groups.index(ALL), groups.index(pr.critical)
    for q2 in range(Q):
        other = rq != q2
        A.coef(rows[other], y0 + (ga * Q + q2) * P + rp[other], 1.0)
    A.coef(rows, y0 + (gc * Q + rq) * P + rp, pr.n1_fraction)
    return at, rq, rp
