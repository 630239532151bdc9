"""The HiGHS adapter: pass the LP in one call, solve, read primal values, duals and status.

The LP's dual objective is recomputed here from the duals HiGHS returns (bounds × duals + offset), so callers get
a lower bound they can check the primal against: for an optimal LP the two agree (gap 0).

When the builder attached an equivalent smaller LP (identical streams merged, model.py), that one is solved and
its primal and duals are lifted back onto the LP as stated, so the Solution always describes `lp` itself.
`solve(..., start=previous)` warm-starts the simplex from a previous plan's basis, matched by meaning.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
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
    basis: tuple | None = None    # (keys of the LP solved, its HighsBasis): what a warm start reads

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


# With identical streams merged, HiGHS's primal simplex is 2-10x faster than its default dual simplex on
# bench/plan.py's portfolios from 100 clusters (reduced LPs of 25,000-90,000 columns); on smaller reduced LPs
# (48 clusters: 12,000 columns) and on unmerged LPs dual stays faster.
REDUCED_OPTIONS: dict = {"simplex_strategy": 4}
PRIMAL_FROM_COLS = 20_000
# From a previous plan's basis (a re-plan a month later, a what-if), dual simplex needs a few dozen iterations
# where primal needs ~1,000 (bench, 100 clusters × 60 workloads).
WARM_OPTIONS: dict = {"simplex_strategy": 1}


@dataclass(frozen=True)
class _Raw:
    status: str
    optimal: bool
    col: np.ndarray
    col_dual: np.ndarray
    row: np.ndarray
    row_dual: np.ndarray
    objective: float              # objective units, nan without a primal
    dual_valid: bool
    iterations: int
    basis: tuple | None = None


_ST = highspy.HighsBasisStatus


def _carry(old_keys: np.ndarray, old_status: np.ndarray, keys: np.ndarray, default: np.ndarray) -> np.ndarray:
    """Statuses of `keys` taken from the previous LP's matching key, else `default`."""
    at = {k: i for i, k in enumerate(map(tuple, old_keys.tolist()))}
    out = default.copy()
    for j, k in enumerate(map(tuple, keys.tolist())):
        i = at.get(k)
        if i is not None:
            out[j] = old_status[i]
    return out


def _warm_basis(lp: Lp, start: Solution) -> highspy.HighsBasis:
    """An alien basis for `lp` from a previous solution's: matching columns and rows keep their status; new
    columns start at a finite bound, new rows basic. HiGHS completes and repairs it (singular or miscounted)."""
    keys, old = start.basis
    col_status = np.array([int(v) for v in old.col_status], np.int8)
    row_status = np.array([int(v) for v in old.row_status], np.int8)
    (oc, orow), (nc, nr) = keys(), lp.keys()
    lo, hi = lp.col_lo, lp.col_hi
    at_bound = np.where(np.isfinite(lo), int(_ST.kLower), np.where(np.isfinite(hi), int(_ST.kUpper), int(_ST.kZero)))
    col = _carry(oc, col_status, nc, at_bound)
    col = np.where((col == int(_ST.kUpper)) & ~np.isfinite(hi), at_bound, col)
    col = np.where((col == int(_ST.kLower)) & ~np.isfinite(lo), at_bound, col)
    row = _carry(orow, row_status, nr, np.full(len(nr), int(_ST.kBasic)))
    row = np.where(((row == int(_ST.kUpper)) & ~np.isfinite(lp.row_hi))
                   | ((row == int(_ST.kLower)) & ~np.isfinite(lp.row_lo)), int(_ST.kBasic), row)
    b = highspy.HighsBasis()
    b.col_status = [_ST(int(v)) for v in col]
    b.row_status = [_ST(int(v)) for v in row]
    b.alien, b.valid = True, False
    return b


def _statuses(h: highspy.Highs) -> tuple | None:
    """The final basis, kept as HiGHS returns it (read only when a later solve starts from it)."""
    b = h.getBasis()
    return (b,) if b.valid else None


def _run(lp: Lp, threads: int | None, time_limit_s: float | None, options: dict | None,
         start: Solution | None = None) -> _Raw:
    h = _new_highs()
    h.setOptionValue("output_flag", False)
    if threads:
        h.setOptionValue("threads", int(threads))
    if time_limit_s:
        h.setOptionValue("time_limit", float(time_limit_s))
    for k, v in (options or {}).items():
        h.setOptionValue(k, v)
    h.passModel(_highs_lp(lp))
    if start is not None and start.basis is not None and lp.keys is not None:
        h.setBasis(_warm_basis(lp, start))
    h.run()
    status = h.getModelStatus()
    sol = h.getSolution()
    n, m = lp.n_cols, lp.n_rows
    if status == highspy.HighsModelStatus.kModelEmpty:    # nothing to decide: the cost is the fixed part
        return _Raw("optimal", True, np.zeros(n), np.zeros(n), np.zeros(m), np.zeros(m), lp.offset, True, 0)
    optimal = status == highspy.HighsModelStatus.kOptimal
    col = np.asarray(sol.col_value, float) if sol.value_valid else np.zeros(n)
    row = np.asarray(sol.row_value, float) if sol.value_valid else np.zeros(m)
    cd = np.asarray(sol.col_dual, float) if sol.dual_valid else np.zeros(n)
    rd = np.asarray(sol.row_dual, float) if sol.dual_valid else np.zeros(m)
    info = h.getInfo()
    obj = float(h.getObjectiveValue()) if sol.value_valid else float("nan")
    words = "optimal" if optimal else h.modelStatusToString(status).lower()
    st = _statuses(h) if lp.keys is not None else None
    return _Raw(words, optimal, col, cd, row, rd, obj, bool(sol.dual_valid),
                int(info.simplex_iteration_count + info.ipm_iteration_count), st and (lp.keys, *st))


def _lift(lp: Lp, r: _Raw) -> _Raw:
    """The reduced LP's solution on the original columns and rows: x = W x_red, y = Rᵀ y_red, and the reduced
    costs and row activities recomputed from the original matrix (so duals and bound refer to `lp` itself)."""
    red = lp.reduced
    col = red.lift @ r.col
    rd = red.rows.T @ r.row_dual
    cd = lp.cost - lp.matrix.T @ rd
    obj = float(lp.cost @ col) + lp.offset if np.isfinite(r.objective) else r.objective
    return _Raw(r.status, r.optimal, col, cd, lp.matrix @ col, rd, obj, r.dual_valid, r.iterations, r.basis)


def solve(lp: Lp, clock: Clock, threads: int | None = None, time_limit_s: float | None = None,
          options: dict | None = None, start: Solution | None = None) -> Solution:
    """Solve `lp` (its equivalent reduced LP when the builder attached one) with HiGHS; `options` are extra
    HiGHS options (name → value), e.g. {"solver": "ipm"}. `start`: a previous Solution of the same portfolio
    (another horizon, changed demand or prices): its basis, matched by what each column and row means, warm
    starts the simplex. The answer does not depend on it, only the time."""
    t0 = clock()
    warm = start is not None and start.basis is not None
    if lp.reduced is not None:
        red = replace(lp.reduced.lp, keys=lp.keys)
        cold = REDUCED_OPTIONS if red.n_cols >= PRIMAL_FROM_COLS else {}
        opts = {**(WARM_OPTIONS if warm else cold), **(options or {})}
        r = _lift(lp, _run(red, threads, time_limit_s, opts, start))
    else:
        r = _run(lp, threads, time_limit_s, {**(WARM_OPTIONS if warm else {}), **(options or {})}, start)
    solve_s = clock() - t0
    bound = dual_bound(lp, r.row_dual, r.col_dual) if r.dual_valid else float("nan")
    return Solution(r.status, r.optimal, r.col, r.col_dual, r.row, r.row_dual, r.objective * M, bound * M,
                    r.iterations, solve_s, r.basis)
