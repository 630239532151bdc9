"""How good are the online decisions? Each bundled scenario is simulated with the placement profiles `plan`,
`cost` and `list-price` over the same window, and each simulated cost is divided by the LP bound: the planner's
optimum on that window (its cost without the unmet-demand penalty), in the same units of work.

    python bench/decisions.py [--months 3] [--seed 0] [--scenarios a.yaml,b.yaml] [--workers 2]

Prints one JSON line: `ratio_to_lp: {scenario: {profile: ratio}}`, `served: {scenario: {profile: share}}`
(inference demand served; `lp` is the planner's), `cost_usd`, `lp_usd`, `wall_s`. Targets: `plan` ≤ 1.02 × LP
on every scenario, never dearer than `list-price`, serving at least as much.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from gpufleet.files import parse_scenario  # noqa: E402
from gpufleet.placement.state import to_seconds  # noqa: E402
from gpufleet.planning import build_problem, solve_problem  # noqa: E402
from gpufleet.planning.accounts import bound_usd  # noqa: E402
from gpufleet.planning.guidance import Replanner  # noqa: E402
from gpufleet.planning.periods import add_months  # noqa: E402
from gpufleet.simulation.simulator import SimOptions, Simulator  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
SCENARIOS = ["small.yaml", "frontier-lab.yaml", "frontier-dense.yaml", "frontier-pool.yaml", "posttrain-crunch.yaml"]
PROFILES = ["plan", "cost", "list-price"]


def _load(path: str):
    with open(path, encoding="utf-8") as f:
        return parse_scenario(f.read(), path)


def simulate(path: str, profile: str, months: int, seed: int) -> dict:
    p = _load(path)
    end = to_seconds(add_months(p.start, months))
    planner = Replanner(p, end, "monthly", clock=time.perf_counter) if profile == "plan" else None
    sim = Simulator(p, profile, SimOptions(until_s=end, planner=planner), random.Random(seed))
    r = sim.run(time.perf_counter)
    return {"scenario": path, "profile": profile, "cost_usd": r["cost_usd"], "gpu_hours": r["gpu_hours"],
            "served": r["inference_slo_attainment"], "wall_s": r["wall_s"],
            "plan_s": round(sum(x["wall_s"] for x in r["plans"]), 3)}


def lp_bound(path: str, months: int) -> dict:
    p = _load(path)
    t0 = time.perf_counter()
    pr = build_problem(p, p.start, add_months(p.start, months))
    plan = solve_problem(pr)
    st = pr.streams
    inf = st.kind_mask(frozenset(["inference"]))
    asked = float(st.demand[inf].sum())
    served = 1.0 - float(plan.unmet[inf].sum()) / asked if asked else 1.0
    return {"scenario": path, "lp_usd": bound_usd(plan, pr), "served": served,
            "status": plan.status, "wall_s": round(time.perf_counter() - t0, 3)}


def _ratio(cost: float, bound: float) -> float | None:
    """Simulated cost over the bound; None when the bound is 0 (a scenario without work to place)."""
    return round(cost / bound, 4) if bound > 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--months", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    paths = [s if os.path.sep in s else os.path.join(HERE, s) for s in a.scenarios.split(",")]
    profiles = a.profiles.split(",")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as pool:
        lps = {path: pool.submit(lp_bound, path, a.months) for path in paths}
        sims = {(path, prof): pool.submit(simulate, path, prof, a.months, a.seed) for path in paths for prof in profiles}
        lp = {k: f.result() for k, f in lps.items()}
        res = {k: f.result() for k, f in sims.items()}
    name = {path: os.path.basename(path).removesuffix(".yaml") for path in paths}
    doc = {"months": a.months, "seed": a.seed,
           "ratio_to_lp": {name[p]: {prof: _ratio(res[(p, prof)]["cost_usd"], lp[p]["lp_usd"]) for prof in profiles}
                           for p in paths},
           "served": {name[p]: {**{prof: res[(p, prof)]["served"] for prof in profiles}, "lp": round(lp[p]["served"], 4)}
                      for p in paths},
           "cost_usd": {name[p]: {prof: res[(p, prof)]["cost_usd"] for prof in profiles} for p in paths},
           "lp_usd": {name[p]: round(lp[p]["lp_usd"], 2) for p in paths},
           "lp_status": {name[p]: lp[p]["status"] for p in paths},
           "sim_wall_s": {name[p]: {prof: res[(p, prof)]["wall_s"] for prof in profiles} for p in paths},
           "plan_wall_s": {name[p]: res[(p, "plan")]["plan_s"] for p in paths if "plan" in profiles},
           "wall_s": round(time.perf_counter() - t0, 2)}
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
