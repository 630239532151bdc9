"""Hold the plan against the simulator: replay the plan's first months with the placement engine and compare
GPU-hours per provider (simulated vs planned).

The simulator places each job online with the scenario's placement profile, so the two differ where online
decisions differ from the optimum, where replicas are whole (the plan's are fractional), and where failures or
gang packing leave capacity idle. The clock is a parameter (the simulator's wall time).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from ..model.scenario import Portfolio
from ..placement.state import to_seconds
from ..simulation.simulator import SimOptions, Simulator
from .periods import add_months
from .solution import Plan
from .solve import Clock


def check_window(plan: Plan, months: int) -> int:
    """How many of the plan's periods the first `months` months cover (whole periods, at least one)."""
    pr = plan.problem
    stop = add_months(pr.periods.start, months)
    whole = sum(1 for b in pr.periods.bounds[1:] if b <= stop)
    return max(1, min(whole, pr.periods.n))


def simulation_check(p: Portfolio, plan: Plan, months: int, clock: Clock, seed: int = 0,
                     profile: str | None = None) -> dict[str, Any]:
    pr = plan.problem
    n = check_window(plan, months)
    start, end = pr.periods.bounds[0], pr.periods.bounds[n]
    opts = SimOptions(start_s=to_seconds(start), until_s=to_seconds(end),
                      random_failures=p.scenario.failures.random)
    sim = Simulator(p, profile, opts, random.Random(seed))
    result = sim.run(clock)
    planned = plan.provider_use()[:, :n].sum(axis=1)
    like_sim = as_simulated(plan, n)
    rows: dict[str, dict[str, float]] = {}
    for q, prov in enumerate(pr.providers):
        sim_h = float(result["per_provider"].get(prov, {}).get("gpu_hours", 0.0))
        rows[prov] = {"planned_gpu_hours": round(float(planned[q]), 1), "simulated_gpu_hours": round(sim_h, 1),
                      "relative_difference": _rel(sim_h, float(planned[q])),
                      "planned_as_simulated_gpu_hours": round(float(like_sim[q]), 1),
                      "relative_difference_as_simulated": _rel(sim_h, float(like_sim[q]))}
    sim_total, plan_total = sum(r["simulated_gpu_hours"] for r in rows.values()), float(np.sum(planned))
    return {"months": months, "periods": n, "start": start.isoformat(), "end": end.isoformat(), "seed": seed,
            "profile": result["profile"], "random_failures": opts.random_failures,
            "per_provider": rows,
            "total": {"planned_gpu_hours": round(plan_total, 1), "simulated_gpu_hours": round(sim_total, 1),
                      "relative_difference": _rel(sim_total, plan_total),
                      "planned_as_simulated_gpu_hours": round(float(like_sim.sum()), 1),
                      "relative_difference_as_simulated": _rel(sim_total, float(like_sim.sum()))},
            "max_abs_relative_difference": max((abs(r["relative_difference"]) for r in rows.values()
                                                if r["planned_gpu_hours"] or r["simulated_gpu_hours"]),
                                               default=0.0),
            "inference_slo_attainment": result["inference_slo_attainment"],
            "simulated_cost_usd": result["cost_usd"], "wall_s": result["wall_s"]}


def as_simulated(plan: Plan, n: int) -> np.ndarray:
    """[Q] the plan's GPU-hours in the first n periods counted as the simulator counts them. The two count
    alike now (a replica holds its GPUs, and a faster type needs fewer replicas, in both), so this is the plan's
    GPU-hours; the `*_as_simulated` fields of the document stay for the documents that read them."""
    return plan.provider_use()[:, :n].sum(axis=1)


def _rel(sim: float, plan: float) -> float:
    """(simulated − planned) / planned; ±1 when one side is zero and the other is not, 0 when both are."""
    if plan == 0:
        return 0.0 if sim == 0 else 1.0
    return round((sim - plan) / plan, 4)
