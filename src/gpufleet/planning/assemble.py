"""Bulk assembly of an LP: blocks of columns, rows and coefficients appended as arrays; one CSC at the end.

`aggregate` derives a smaller, equivalent LP by merging columns (x = W · x_red, each merged column split among
its members by fixed weights that sum to 1) and summing rows (R); solve.py solves that one and lifts its
primal (W · x_red) and duals (Rᵀ · y_red) back onto the original columns and rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Lp:
    cost: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray
    matrix: sp.csc_matrix
    offset: float
    layout: Any                       # the builder's map of where each block sits
    reduced: Reduced | None = None  # an equivalent smaller LP to solve instead (see `aggregate`)
    keys: Any = None                  # () -> (column keys, row keys) of the LP solved, for warm starts

    @property
    def n_cols(self) -> int:
        return len(self.cost)

    @property
    def n_rows(self) -> int:
        return len(self.row_lo)


@dataclass(frozen=True)
class Reduced:
    """An LP equivalent to the original: x = lift · x_red, and each reduced row is a sum of original rows."""

    lp: Lp
    lift: sp.csr_matrix               # W [n_cols, n_red_cols]
    rows: sp.csr_matrix               # R [n_red_rows, n_rows] (0/1)
    col_ids: np.ndarray               # the original column each reduced column stands for
    row_ids: np.ndarray               # the original row each reduced row stands for


def aggregate(lp: Lp, col_rep: np.ndarray, col_w: np.ndarray, row_rep: np.ndarray) -> Reduced:
    """Merge the columns sharing a representative (`col_rep[j]`, an original column with the same cost and
    bounds as j) with weights `col_w` (each merged column's weights sum to 1), and sum the rows sharing
    `row_rep`. Exact only when the caller has shown the restricted program loses nothing (model.py)."""
    n, m = lp.n_cols, lp.n_rows
    uc, ic = np.unique(col_rep, return_inverse=True)
    ur, ir = np.unique(row_rep, return_inverse=True)
    W = sp.csr_matrix((col_w, (np.arange(n), ic)), shape=(n, len(uc)))
    R = sp.csr_matrix((np.ones(m), (ir, np.arange(m))), shape=(len(ur), m))
    a = (R @ lp.matrix @ W).tocsc()
    a.sum_duplicates()
    a.sort_indices()
    lo = np.zeros(len(ur))
    hi = np.zeros(len(ur))
    np.add.at(lo, ir, lp.row_lo)
    np.add.at(hi, ir, lp.row_hi)
    red = Lp(lp.cost[uc], lp.col_lo[uc], lp.col_hi[uc], lo, hi, a, lp.offset, None)
    return Reduced(red, W, R, uc, ur)


class Assembler:
    """Appends blocks; `cols` and `rows` return the offset of the block they add."""

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
        cost = np.asarray(cost, float)
        n, at = len(cost), self.ncol
        self.cost.append(cost)
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
        self.ci.append(np.broadcast_to(np.asarray(c, np.int64), r.shape))
        self.v.append(np.broadcast_to(np.asarray(v, float), r.shape))

    def lp(self, offset: float, layout: Any) -> Lp:
        def cat(xs: list[np.ndarray], dtype=float) -> np.ndarray:
            return np.concatenate(xs).astype(dtype) if xs else np.zeros(0, dtype)
        a = sp.coo_matrix((cat(self.v), (cat(self.ri, np.int64), cat(self.ci, np.int64))),
                          shape=(self.nrow, self.ncol)).tocsc()
        a.sum_duplicates()
        return Lp(cat(self.cost), cat(self.lo), cat(self.hi), cat(self.rlo), cat(self.rhi), a, offset, layout)
