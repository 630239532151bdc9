"""Two baselines computed by the same LP builder with restrictions, priced by the same objective.

- greedy cheapest list price: what a per-job broker (SkyPilot-style) does: serve demand on the cheapest list
  price per useful GPU-hour, ignoring every contract. Solved as the same LP with the list price as objective
  (same capacity, demand, caps and N-1 rows, so the allocation is one the plan could have chosen), then that
  allocation is fixed and priced under the contracts (reserved, commitments with take-or-pay, on demand).
  The plan is therefore never dearer than this baseline.
- single provider: every stream may run on one provider's clusters only; for each provider, the contract
  objective is minimised (unmet demand at the penalty) and the cheapest provider is kept. Concentration caps are
  dropped (one provider breaks any cap below 100% by construction); N-1 stays, and the other providers'
  contracts are still owed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import BuildOptions
from .planner import solve_problem
from .problem import Problem
from .solution import Plan
from .solve import Clock


def _zero() -> float:
    return 0.0


def _summary(plan: Plan) -> dict[str, Any]:
    return {"status": plan.status, "objective_usd": round(plan.objective_usd, 2),
            "unmet_gpu_hours": round(float(plan.unmet.sum() + plan.unmet_budget.sum()), 1),
            "solve_s": round(plan.solve_s, 4)}


def greedy_list_price(pr: Problem, clock: Clock = _zero) -> Plan:
    chosen = solve_problem(pr, BuildOptions(objective="list_price"), clock)
    return solve_problem(pr, BuildOptions(fixed_x=chosen.usage, caps=False, n1=False), clock)


def single_provider(pr: Problem, clock: Clock = _zero) -> tuple[str, Plan, dict[str, float]]:
    """The cheapest single provider, its plan, and every provider's cost."""
    costs: dict[str, float] = {}
    best: tuple[str, Plan] | None = None
    for q, prov in enumerate(pr.providers):
        allow = np.broadcast_to((pr.provider_of == q)[None, :], pr.streams.speed.shape)
        plan = solve_problem(pr, BuildOptions(allow=allow, caps=False), clock)
        costs[prov] = round(plan.objective_usd, 2)
        if plan.optimal and (best is None or plan.objective_usd < best[1].objective_usd):
            best = (prov, plan)
    if best is None:
        raise RuntimeError("no single-provider plan could be solved")
    return best[0], best[1], costs


def baselines_doc(plan: Plan, pr: Problem, clock: Clock = _zero) -> dict[str, Any]:
    greedy = greedy_list_price(pr, clock)
    prov, single, costs = single_provider(pr, clock)
    return {
        "plan_objective_usd": round(plan.objective_usd, 2),
        "greedy_list_price": _summary(greedy) | {
            "saving_usd": round(greedy.objective_usd - plan.objective_usd, 2)},
        "single_provider": _summary(single) | {
            "provider": prov, "saving_usd": round(single.objective_usd - plan.objective_usd, 2),
            "by_provider_usd": costs},
    }
