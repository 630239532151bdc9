"""Rows over providers: aggregates of GPU-hours per class group and provider, concentration caps, N-1.

    aggregate  y[g,q,p] − Σ x of group g on provider q in p = 0
    cap        y[g,q,p] − share · Σ_q' y[g,q',p] ≤ 0
    n1         Σ_{q'≠q} y[all,q',p] + f · y[critical,q,p] ≤ Σ_{c∉q} capacity[c,p]

The aggregates keep caps and N-1 sparse: a cap row has one coefficient per provider, not one per x.
"""

from __future__ import annotations

import numpy as np

from .assemble import Assembler
from .problem import ALL, Problem

INF = np.inf
Rows3 = tuple[int, np.ndarray, np.ndarray]
Rows4 = tuple[int, np.ndarray, np.ndarray, np.ndarray]


def n1_on(pr: Problem, n1: bool) -> bool:
    return n1 and pr.n1_fraction > 0 and bool(pr.critical) and len(pr.providers) > 1


def groups_needed(pr: Problem, caps: bool, n1: bool) -> tuple[frozenset[str], ...]:
    want: list[frozenset[str]] = [lim.classes for lim in pr.limits] if caps else []
    if n1_on(pr, n1):
        want += [ALL, pr.critical]
    return tuple(dict.fromkeys(want))


def aggregates(A: Assembler, pr: Problem, groups, xi: np.ndarray, xs: np.ndarray, xc: np.ndarray,
               xp: np.ndarray) -> tuple[int, int]:
    """y columns and their defining rows; returns (first y column, first aggregate row)."""
    Q, P = len(pr.providers), pr.periods.n
    n = len(groups) * Q * P
    y0 = A.cols(np.zeros(n), 0.0, INF)
    agg0 = A.rows(0.0, 0.0, n)
    A.coef(agg0 + np.arange(n), y0 + np.arange(n), 1.0)
    qx = pr.provider_of[xc]
    for g, classes in enumerate(groups):
        m = pr.streams.kind_mask(classes)[xs]
        A.coef(agg0 + (g * Q + qx[m]) * P + xp[m], xi[m], -1.0)
    return y0, agg0


def caps(A: Assembler, pr: Problem, groups, y0: int) -> Rows4:
    """One row per (limit, provider it applies to, period); returns (offset, limit, provider, period)."""
    Q, P = len(pr.providers), pr.periods.n
    pairs = [(li, q) for li, lim in enumerate(pr.limits)
             for q in (range(Q) if lim.provider is None else
                       [pr.providers.index(lim.provider)] if lim.provider in pr.providers else [])]
    ls = np.array([a for a, _ in pairs], np.int64)
    qs = np.array([b for _, b in pairs], np.int64)
    n = len(pairs) * P
    at = A.rows(-INF, 0.0, n)
    rl, rq, rp = np.repeat(ls, P), np.repeat(qs, P), np.tile(np.arange(P), len(pairs))
    share = np.array([pr.limits[i].max_share for i in rl])
    g = np.array([groups.index(pr.limits[i].classes) for i in rl], np.int64)
    rows = at + np.arange(n)
    for q2 in range(Q):   # every provider's aggregate enters every row: Q coefficients per row
        A.coef(rows, y0 + (g * Q + q2) * P + rp, np.where(rq == q2, 1.0 - share, -share))
    return at, rl, rq, rp


def n1(A: Assembler, pr: Problem, groups, y0: int, scale: float) -> Rows3:
    """One row per (provider that may carry critical work, period); returns (offset, provider, period)."""
    st = pr.streams
    Q, P = len(pr.providers), pr.periods.n
    crit_elig = st.eligible[st.kind_mask(pr.critical)].any(axis=0)
    qs = np.unique(pr.provider_of[crit_elig])
    cap_q = np.array([pr.capacity[pr.provider_of == q].sum(axis=0) for q in range(Q)]).reshape(Q, P)
    n = len(qs) * P
    rq, rp = np.repeat(qs, P), np.tile(np.arange(P), len(qs))
    at = A.rows(-INF, (cap_q.sum(axis=0)[rp] - cap_q[rq, rp]) / scale, n)
    rows = at + np.arange(n)
    ga, gc = groups.index(ALL), groups.index(pr.critical)
    for q2 in range(Q):
        other = rq != q2
        A.coef(rows[other], y0 + (ga * Q + q2) * P + rp[other], 1.0)
    A.coef(rows, y0 + (gc * Q + rq) * P + rp, pr.n1_fraction)
    return at, rq, rp
