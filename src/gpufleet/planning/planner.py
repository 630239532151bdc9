"""One planning run: build the LP from a Problem, solve it with HiGHS, read the plan back.

The clock is a parameter (the CLI and the benchmark pass `time.perf_counter`); nothing here reads the wall clock.
"""

from __future__ import annotations

from .model import BuildOptions, build_lp
from .problem import Problem
from .solution import Plan, extract
from .solve import Clock, solve


def _no_clock() -> float:
    return 0.0


def solve_problem(pr: Problem, options: BuildOptions = BuildOptions(), clock: Clock = _no_clock,
                  threads: int | None = None, start: Plan | None = None) -> Plan:
    """`start`: an earlier plan of the same portfolio (a re-plan): the simplex starts from its basis."""
    t0 = clock()
    lp = build_lp(pr, options)
    build_s = clock() - t0
    sol = solve(lp, clock, threads=threads, start=start.solution if start is not None else None)
    return extract(pr, lp, sol, build_s)
