"""The linear program, built in bulk: every block of columns and rows is a few numpy operations, and the
constraint matrix is one COO → CSC conversion. No Python loop runs per coefficient.

Columns (units: GPU-hours / G, dollars / M):
    x[s,c,p]   GPU-hours of stream s on cluster c in period p (only where s may run and c has capacity)
    unmet      reference GPU-hours not served: one per (stream, period) asked, one per training budget
    b[c,p]     GPU-hours on c not covered by a pool, billed at the period's rate — only on cells a pool
               covers; elsewhere every GPU-hour is billed, so x carries the rate itself
    r[k,c,p]   GPU-hours on c covered by pool k (a reservation, plus expansion GPUs bought into it)
    short[k]   take-or-pay shortfall of commitment k (dollars owed beyond what was drawn)
    opt[e]     GPUs bought of expansion option e
    y[g,q,p]   GPU-hours of class group g on provider q (policy_rows.py)
Rows:
    capacity   Σ_s x[s,c,p] ≤ capacity[c,p]
    billing    Σ_s x[s,c,p] − Σ_k r[k,c,p] − b[c,p] = 0             (pooled cells)
    pool       Σ_c r[k,c,p] − cover[e,p] · opt[e] ≤ reserved GPU-hours[k,p]
    demand     Σ_c speed[s,c] · x[s,c,p] + unmet = asked          (training: summed over its window)
    gang       Σ_c x[s,c,p] ≤ gpus × hours                        (training: one gang at a time)
    commit     short[k] + Σ rate · billed GPU-hours ≥ commitment in the plan   (cost = max(commitment, drawn))
    aggregate, cap, n1 (policy_rows.py)
Objective: reserved (a constant) + Σ rate · billed + Σ short + Σ option cost + penalty · Σ unmet.

At scale (`MERGE_FROM_COLS`), inference and batch streams that may run on the same clusters at the same speeds
are merged for the solve (`merge_groups`, exact): the LP is attached a reduced equivalent (assemble.aggregate)
that solve.py solves and lifts back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import numpy as np

from . import policy_rows
from .assemble import Assembler, Lp, aggregate
from .problem import Problem

G = 1e3      # GPU-hours per LP unit: keeps capacities of 10^8 GPU-hours near 10^5
M = 1e6      # dollars per objective unit
INF = np.inf
_NONE = np.zeros(0, np.int64)
# Below this many columns HiGHS solves the LP as stated in well under a second, and small plans (the examples)
# stay exactly the plans they were: merging picks the same optimum, but not always the same one of several.
MERGE_FROM_COLS = 20_000


@dataclass(frozen=True)
class BuildOptions:
    objective: Literal["contracts", "list_price"] = "contracts"
    caps: bool = True
    n1: bool = True
    allow: np.ndarray | None = None         # [S, C] further restriction of where streams may run
    fixed_x: np.ndarray | None = None       # [S, C, P] GPU-hours: price this allocation instead of choosing one
    merge: bool | None = None               # solve with identical streams merged (exact; see `merge_groups`);
                                            # None: when the LP has at least MERGE_FROM_COLS columns


@dataclass(frozen=True)
class Layout:
    """Where each block of columns and rows sits, with the indices that name its members."""

    x: tuple[int, np.ndarray, np.ndarray, np.ndarray]              # offset, s, c, p
    unmet: tuple[int, np.ndarray, np.ndarray]                      # offset, s, p (-1: a training budget)
    b: tuple[int, np.ndarray, np.ndarray]                          # offset, c, p (pooled cells; billing rows too)
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


def _ids(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the True cells of a 2-D mask, and an array giving each cell's position (-1 if not set)."""
    a, b = np.nonzero(mask)
    pos = np.full(mask.shape, -1, np.int64)
    pos[a, b] = np.arange(len(a))
    return a, b, pos


def _pool_cells(pr: Problem, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pool, cluster, period) of every r column: a pool's clusters, in periods it holds GPU-hours."""
    bl, P = pr.billing, pr.periods.n
    covers = np.zeros((len(bl.pools), P))
    for e in bl.options:
        covers[e.pool] += e.cover_hours
    trip = [np.zeros((0, 3), np.int64)]
    for k, pool in enumerate(bl.pools):
        live = (pool.base_hours > 0) | (covers[k] > 0)
        cl = np.array(pool.clusters, np.int64)
        cc, pp = np.nonzero(live[None, :] & cell[cl])
        trip.append(np.column_stack([np.full(len(cc), k), cl[cc], pp]))
    rk, rc, rp = np.concatenate(trip).T
    return rk, rc, rp


def build_lp(pr: Problem, o: BuildOptions = BuildOptions()) -> Lp:
    """The whole LP. One function read top to bottom by numbered stage, because every stage indexes the same
    x arrays (xs, xc, xp); each stage is a handful of array operations."""
    st, bl = pr.streams, pr.billing
    S, C, P = pr.shape
    A = Assembler()
    list_obj, fx = o.objective == "list_price", o.fixed_x
    fixed = fx is not None

    # 1. x: where each stream may run, in periods where it asks and the cluster has capacity
    elig = st.eligible if o.allow is None else st.eligible & o.allow
    xs, xc, xp = np.nonzero(elig[:, :, None] & st.window[:, None, :] & (pr.capacity > 0)[None, :, :])
    cell = np.zeros((C, P), bool)
    cell[xc, xp] = True
    rk, rc, rp = _pool_cells(pr, cell)
    pooled = np.zeros((C, P), bool)
    pooled[rc, rp] = True
    direct = ~pooled[xc, xp]                      # cells no pool covers: x is billed as it is used
    xv = np.zeros(len(xs))
    if fx is not None:   # pricing a given allocation: x is fixed; rows on x alone may not reject it over rounding
        xv = np.clip(fx[xs, xc, xp], 0.0, None) / G
        x0 = A.cols(np.where(direct, bl.rate[xc, xp] * G / M, 0.0), xv, xv)
    elif list_obj:
        x0 = A.cols(pr.list_price[xc] * G / M, 0.0, INF)
    else:
        x0 = A.cols(np.where(direct, bl.rate[xc, xp] * G / M, 0.0), 0.0, INF)
    xi = x0 + np.arange(len(xs))

    # 2. unmet demand: one column per (stream, period) asked, one per training budget
    us, up = np.nonzero(~st.is_training[:, None] & (st.demand > 0))
    ts = np.nonzero(st.is_training & (st.budget > 0))[0]
    us, up = np.concatenate([us, ts]), np.concatenate([up, np.full(len(ts), -1)])
    u0 = A.cols(np.full(len(us), pr.unmet_penalty * G / M), -INF if fixed else 0.0, INF)

    # 3. capacity per cell with x
    cc, cp, cell_id = _ids(cell)
    cap_hi = pr.capacity[cc, cp] / G
    if fixed:
        cap_hi = np.maximum(cap_hi, np.bincount(cell_id[xc, xp], weights=xv, minlength=len(cc)))
    cap0 = A.rows(-INF, cap_hi, len(cc))
    A.coef(cap0 + cell_id[xc, xp], xi, 1.0)

    # 4. pooled cells: usage = covered + billed; pools hold reserved GPU-hours plus options bought
    bc, bp, b_id = _ids(pooled)
    b0 = A.cols(np.zeros(len(bc)) if list_obj else bl.rate[bc, bp] * G / M, 0.0, INF)
    bill0 = A.rows(0.0, 0.0, len(bc))
    A.coef(bill0 + b_id[xc[~direct], xp[~direct]], xi[~direct], 1.0)
    A.coef(bill0 + np.arange(len(bc)), b0 + np.arange(len(bc)), -1.0)
    r0 = A.cols(np.zeros(len(rk)), 0.0, INF)
    A.coef(bill0 + b_id[rc, rp], r0 + np.arange(len(rk)), -1.0)
    used = np.zeros((len(bl.pools), P), bool)
    used[rk, rp] = True
    pk, pp, pool_id = _ids(used)
    base = np.array([p.base_hours for p in bl.pools]).reshape(len(bl.pools), P)
    pool0 = A.rows(-INF, base[pk, pp] / G, len(pk))
    A.coef(pool0 + pool_id[rk, rp], r0 + np.arange(len(rk)), 1.0)
    e0 = A.cols(np.array([0.0 if list_obj else e.cost_per_gpu / M for e in bl.options]),
                0.0, np.array([float(e.gpus) for e in bl.options]))
    for i, e in enumerate(bl.options):
        ps = np.nonzero((e.cover_hours > 0) & (pool_id[e.pool] >= 0))[0]
        A.coef(pool0 + pool_id[e.pool, ps], e0 + i, -e.cover_hours[ps] / G)

    # 5. take-or-pay: shortfall + drawn ≥ the commitment owed in the plan
    K = len(bl.commitments)
    s0 = A.cols(np.zeros(K) if list_obj else np.ones(K), 0.0, INF)
    com0 = A.rows(np.array([k.window_usd / M for k in bl.commitments]), INF, K)
    A.coef(com0 + np.arange(K), s0 + np.arange(K), 1.0)
    kb = bl.commit[bc, bp]
    A.coef(com0 + kb[kb >= 0], b0 + np.nonzero(kb >= 0)[0], bl.rate[bc, bp][kb >= 0] * G / M)
    kx = np.where(direct, bl.commit[xc, xp], -1)
    A.coef(com0 + kx[kx >= 0], xi[kx >= 0], bl.rate[xc, xp][kx >= 0] * G / M)

    # 6. demand: per (stream, period) rows and training budgets; unmet columns align with these rows
    asked = np.where(up >= 0, st.demand[us, np.maximum(up, 0)], st.budget[us]) / G
    dem0 = A.rows(asked, asked, len(us))
    A.coef(dem0 + np.arange(len(us)), u0 + np.arange(len(us)), 1.0)
    dem_id = np.full((S, P), -1, np.int64)
    dem_id[us[up >= 0], up[up >= 0]] = np.nonzero(up >= 0)[0]
    train_id = np.full(S, -1, np.int64)
    train_id[us[up < 0]] = np.nonzero(up < 0)[0]
    A.coef(dem0 + np.where(st.is_training[xs], train_id[xs], dem_id[xs, xp]), xi, st.speed[xs, xc])

    # 7. one gang at a time: a training stream's GPU-hours per period
    tx = st.is_training[xs]
    gcell = np.zeros((S, P), bool)
    gcell[xs[tx], xp[tx]] = True
    gs, gp, gang_id = _ids(gcell & np.isfinite(st.rate_cap))
    gx = gang_id[xs, xp] >= 0
    gang_hi = st.rate_cap[gs, gp] / G
    if fixed:
        gang_hi = np.maximum(gang_hi, np.bincount(gang_id[xs[gx], xp[gx]], weights=xv[gx], minlength=len(gs)))
    gang0 = A.rows(-INF, gang_hi, len(gs))
    A.coef(gang0 + gang_id[xs[gx], xp[gx]], xi[gx], 1.0)

    # 8. aggregates per class group and provider, concentration caps, N-1
    groups = policy_rows.groups_needed(pr, o.caps, o.n1)
    y0, agg0 = policy_rows.aggregates(A, pr, groups, xi, xs, xc, xp)
    cap_rows = policy_rows.caps(A, pr, groups, y0) if o.caps else (A.nrow, _NONE, _NONE, _NONE)
    n1_rows = policy_rows.n1(A, pr, groups, y0, G) if policy_rows.n1_on(pr, o.n1) else (A.nrow, _NONE, _NONE)

    layout = Layout(x=(x0, xs, xc, xp), unmet=(u0, us, up), b=(b0, bc, bp), r=(r0, rk, rc, rp), short=s0,
                    opt=e0, y=(y0, groups), capacity=(cap0, cc, cp), billing=bill0, pool=(pool0, pk, pp),
                    demand=dem0, gang=(gang0, gs, gp), commit=com0, aggregate=agg0, cap=cap_rows, n1=n1_rows)
    lp = A.lp(0.0 if list_obj else bl.fixed_usd / M, layout)
    merge = o.merge if o.merge is not None else lp.n_cols >= MERGE_FROM_COLS
    lp = _reduce(pr, lp, elig) if merge and not fixed else lp
    rep = merge_groups(pr, elig) if lp.reduced is not None else np.arange(S)
    return replace(lp, keys=partial(solved_keys, pr, lp, rep))


def merge_groups(pr: Problem, elig: np.ndarray) -> np.ndarray:
    """[S] the representative (first) stream of each stream's group: inference and batch streams of one kind
    that may run on exactly the same clusters at the same speeds. Training streams stay alone (each has its own
    gang rows and budget window).

    Merging a group into one stream asking the group's total per period is exact: a merged plan splits back
    onto the members in proportion to what each asks in the period (x_s = x_g · asked_s / asked_g, the same
    for unmet), which meets every member's demand row, and every other row (capacity, billing, caps, N-1) and
    the cost see only the sum; conversely any plan of the members sums to a merged plan of the same cost."""
    st = pr.streams
    rep = np.arange(st.n)
    first: dict[tuple[str, bytes], int] = {}
    speed = np.where(elig, st.speed, 0.0)
    for s in range(st.n):
        if st.kinds[s] != "training":
            rep[s] = first.setdefault((st.kinds[s], speed[s].tobytes()), s)
    return rep


def _first_of(key: np.ndarray) -> np.ndarray:
    """Position of the first element with the same key, for each element."""
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return first[inv]


def _reduce(pr: Problem, lp: Lp, elig: np.ndarray) -> Lp:
    """Attach the LP with merged streams (`merge_groups`) to `lp`, when some group has several members."""
    rep = merge_groups(pr, elig)
    if (rep == np.arange(len(rep))).all():
        return lp
    S, C, P = pr.shape
    L = lp.layout
    x0, xs, xc, xp = L.x
    u0, us, up = L.unmet
    demand = pr.streams.demand
    group = np.zeros((S, P))
    np.add.at(group, rep, demand)
    share = np.divide(demand, group[rep], out=np.ones((S, P)), where=group[rep] > 0)   # asked_s / asked_g
    col_rep, col_w, row_rep = np.arange(lp.n_cols), np.ones(lp.n_cols), np.arange(lp.n_rows)
    col_rep[x0:x0 + len(xs)] = x0 + _first_of((rep[xs] * C + xc) * P + xp)
    col_w[x0:x0 + len(xs)] = share[xs, xp]
    per = up >= 0
    ukey = np.where(per, rep[us] * P + up, S * P + us)      # a training budget is its own key
    ufirst = _first_of(ukey)
    col_rep[u0:u0 + len(us)] = u0 + ufirst
    col_w[u0:u0 + len(us)] = np.where(per, share[us, np.maximum(up, 0)], 1.0)
    row_rep[L.demand:L.demand + len(us)] = L.demand + ufirst   # demand rows align with the unmet columns
    return replace(lp, reduced=aggregate(lp, col_rep, col_w, row_rep))



def _h(names) -> np.ndarray:
    return np.array([hash(n) for n in names], np.int64).reshape(-1)


def _put(out: np.ndarray, at: int, tag: int, a, b=0, p=-2) -> None:
    """Write keys (tag, a, b, p) from `at` on; array operands give the count (none of them: one key), scalars
    are repeated. An empty block (e.g. no reservation covers any cluster) writes nothing."""
    arrays = [v for v in (a, b, p) if np.ndim(v) > 0]
    n = len(arrays[0]) if arrays else 1
    if n:
        out[at:at + n] = np.column_stack([np.full(n, tag)] + [np.broadcast_to(v, (n,)) for v in (a, b, p)])


def _names(pr: Problem, L: Layout, rep: np.ndarray) -> dict[str, np.ndarray]:
    """Hashed names of everything a column or row is about, and each period's first day (-1: a budget)."""
    bl = pr.billing
    Q, P = len(pr.providers), pr.periods.n
    g, q, p = np.indices((len(L.y[1]), Q, P)).reshape(3, -1)
    return {"day": np.append(pr.periods.ordinals[:-1], -1), "s": _h(pr.streams.names)[rep], "c": _h(pr.clusters),
            "q": _h(pr.providers), "pool": _h(k.contract for k in bl.pools),
            "com": _h(k.contract for k in bl.commitments), "opt": _h(f"{e.contract}#{e.index}" for e in bl.options),
            "lim": _h(f"{lim.label}@{lim.provider}" for lim in pr.limits),
            "yg": _h(",".join(sorted(c)) for c in L.y[1])[g], "yq": _h(pr.providers)[q], "yp": p}


def _block_keys(pr: Problem, lp: Lp, rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[n, 4] int64 keys naming every column and row by what it means (kind, names, period start day), so two
    LPs built for different horizons of one portfolio can be matched (a warm start). Names are hashed:
    keys compare only within one process."""
    L = lp.layout
    n = _names(pr, L, rep)
    d = n["day"]
    cols, rows = np.zeros((lp.n_cols, 4), np.int64), np.zeros((lp.n_rows, 4), np.int64)
    (x0, xs, xc, xp), (u0, us, up), (b0, bc, bp), (r0, rk, rc, rp) = L.x, L.unmet, L.b, L.r
    _put(cols, x0, 0, n["s"][xs], n["c"][xc], d[xp])
    _put(cols, u0, 1, n["s"][us], 0, d[up])
    _put(cols, b0, 2, n["c"][bc], 0, d[bp])
    _put(cols, r0, 3, n["pool"][rk], n["c"][rc], d[rp])
    _put(cols, L.short, 4, n["com"])
    _put(cols, L.opt, 5, n["opt"])
    _put(cols, L.y[0], 6, n["yg"], n["yq"], d[n["yp"]])
    (c0, cc, cp), (p0, pk, pp), (g0, gs, gp), (l0, ll, lq, lp_), (n0, nq, np_) = L.capacity, L.pool, L.gang, L.cap, L.n1
    _put(rows, c0, 10, n["c"][cc], 0, d[cp])
    _put(rows, L.billing, 11, n["c"][bc], 0, d[bp])
    _put(rows, p0, 12, n["pool"][pk], 0, d[pp])
    _put(rows, L.commit, 13, n["com"])
    _put(rows, L.demand, 14, n["s"][us], 0, d[up])
    _put(rows, g0, 15, n["s"][gs], 0, d[gp])
    _put(rows, L.aggregate, 16, n["yg"], n["yq"], d[n["yp"]])
    _put(rows, l0, 17, n["lim"][ll], n["q"][lq], d[lp_])
    _put(rows, n0, 18, n["q"][nq], 0, d[np_])
    return cols, rows


def solved_keys(pr: Problem, lp: Lp, rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the columns and rows of the LP HiGHS solves (the reduced one when streams are merged)."""
    cols, rows = _block_keys(pr, lp, rep)
    if lp.reduced is None:
        return cols, rows
    return cols[lp.reduced.col_ids], rows[lp.reduced.row_ids]
