"""The HiGHS adapter: pass the LP in one call, solve, read primal values, duals and status.

The LP's dual objective is recomputed here from the duals HiGHS returns (bounds × duals + offset), so callers get
a lower bound they can check the primal against: for an optimal LP the two agree (gap 0).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable

import highspy
import numpy as np

from .assemble import Lp
from .model import M

Clock = Callable[[], float]


@dataclass(frozen=True)
class Solution:
    status: str                   # "optimal" or HiGHS's model status in words
    optimal: bool
    col_value: np.ndarray
    col_dual: np.ndarray          # reduced costs, objective units per column unit
    row_value: np.ndarray
    row_dual: np.ndarray          # d objective / d row bound, objective units per row unit
    objective_usd: float
    dual_bound_usd: float
    iterations: int
    solve_s: float

    @property
    def gap(self) -> float:
        """Relative primal-dual gap: 0 for an LP solved to optimality (up to tolerances)."""
        return abs(self.objective_usd - self.dual_bound_usd) / max(1.0, abs(self.objective_usd))


_quiet = False


def _new_highs() -> highspy.Highs:
    """A silent Highs instance. HiGHS prints a banner to the C-level stdout the first time one is created, which
    would corrupt `--json -`; that first time, file descriptor 1 points at a pipe that is read and discarded."""
    global _quiet
    if _quiet:
        return highspy.Highs()
    sys.stdout.flush()
    saved, (r, w) = os.dup(1), os.pipe()
    try:
        os.dup2(w, 1)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(w)
        os.set_blocking(r, False)
        try:
            while os.read(r, 1 << 16):
                pass
        except BlockingIOError:
            pass
        os.close(r)
    _quiet = True
    return h


def solver_version() -> str:
    return str(_new_highs().version())


def _highs_lp(lp: Lp) -> highspy.HighsLp:
    h = highspy.HighsLp()
    h.num_col_, h.num_row_ = lp.n_cols, lp.n_rows
    h.col_cost_, h.col_lower_, h.col_upper_ = lp.cost, lp.col_lo, lp.col_hi
    h.row_lower_, h.row_upper_ = lp.row_lo, lp.row_hi
    h.offset_ = lp.offset
    a = lp.matrix
    h.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    h.a_matrix_.num_col_, h.a_matrix_.num_row_ = lp.n_cols, lp.n_rows
    h.a_matrix_.start_ = a.indptr.astype(np.int32)
    h.a_matrix_.index_ = a.indices.astype(np.int32)
    h.a_matrix_.value_ = a.data.astype(float)
    return h


def dual_bound(lp: Lp, row_dual: np.ndarray, col_dual: np.ndarray) -> float:
    """The dual objective (objective units): Σ duals × the bound each is attached to, plus the offset.

    A positive dual sits on a lower bound, a negative one on an upper bound (HiGHS's sign convention for
    minimisation); an infinite bound with a non-zero dual contributes nothing (it would be a dual infeasibility).
    """
    def part(d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
        bound = np.where(d > 0, lo, hi)
        ok = np.isfinite(bound)
        return float(np.dot(d[ok], bound[ok]))
    return part(row_dual, lp.row_lo, lp.row_hi) + part(col_dual, lp.col_lo, lp.col_hi) + lp.offset


def solve(lp: Lp, clock: Clock, threads: int | None = None, time_limit_s: float | None = None) -> Solution:
    h = _new_highs()
    h.setOptionValue("output_flag", False)
    if threads:
        h.setOptionValue("threads", int(threads))
    if time_limit_s:
        h.setOptionValue("time_limit", float(time_limit_s))
    t0 = clock()
    h.passModel(_highs_lp(lp))
    h.run()
    solve_s = clock() - t0
    status = h.getModelStatus()
    sol = h.getSolution()
    n, m = lp.n_cols, lp.n_rows
    if status == highspy.HighsModelStatus.kModelEmpty:    # nothing to decide: the cost is the fixed part
        return Solution("optimal", True, np.zeros(n), np.zeros(n), np.zeros(m), np.zeros(m),
                        lp.offset * M, lp.offset * M, 0, solve_s)
    optimal = status == highspy.HighsModelStatus.kOptimal
    col = np.asarray(sol.col_value, float) if sol.value_valid else np.zeros(n)
    row = np.asarray(sol.row_value, float) if sol.value_valid else np.zeros(m)
    cd = np.asarray(sol.col_dual, float) if sol.dual_valid else np.zeros(n)
    rd = np.asarray(sol.row_dual, float) if sol.dual_valid else np.zeros(m)
    info = h.getInfo()
    obj = float(h.getObjectiveValue()) if sol.value_valid else float("nan")
    bound = dual_bound(lp, rd, cd) if sol.dual_valid else float("nan")
    words = "optimal" if optimal else h.modelStatusToString(status).lower()
    return Solution(words, optimal, col, cd, row, rd, obj * M, bound * M,
                    int(info.simplex_iteration_count + info.ipm_iteration_count), solve_s)
