"""Capacity planning: which contract and cluster carry which workload, period by period, at least cost.

    Portfolio ──▶ build_problem   periods, capacity, demand streams, billing, policies (arrays)
              ──▶ build_lp        columns and rows in bulk (numpy + scipy.sparse)
              ──▶ solve           HiGHS: primal, duals, status, dual bound
              ──▶ extract         the Plan in GPU-hours and USD, shadow prices
              ──▶ plan_doc        the JSON document (docs/planning.md)

`check_plan` validates any plan against its problem; `whatif` and `baselines` derive variants from a problem.
"""

from .check import check_plan
from .model import BuildOptions, build_lp
from .planner import solve_problem
from .problem import DEFAULT_UNMET_PENALTY, Problem, build_problem
from .result import plan_doc
from .solution import Plan

__all__ = ["BuildOptions", "DEFAULT_UNMET_PENALTY", "Plan", "Problem", "build_lp", "build_problem", "check_plan",
           "plan_doc", "solve_problem"]
