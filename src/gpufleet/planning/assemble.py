"""Bulk assembly of an LP: blocks of columns, rows and coefficients appended as arrays; one CSC at the end."""

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

    @property
    def n_cols(self) -> int:
        return len(self.cost)

    @property
    def n_rows(self) -> int:
        return len(self.row_lo)


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
