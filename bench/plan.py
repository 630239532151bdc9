"""Planner speed: a synthetic 7-year portfolio (84 monthly periods, 48 clusters, 30 workloads), N-1 on.

    python bench/plan.py [--clusters 48] [--workloads 30] [--years 7] [--threads 2] [--seed 0]
                         [--no-merge] [--option NAME=VALUE]... [--replan]

Prints one JSON line: problem_s (scenario → arrays), build_s (the LP in bulk, with identical streams merged),
solve_s (HiGHS, and lifting the solution back), total_s, variables, constraints, nonzeros (the LP as stated),
solved_variables/solved_constraints/solved_nonzeros (the LP HiGHS solves), status, gap, objective_usd.
`--no-merge` solves the LP as stated; `--option` passes a HiGHS option (e.g. solver=ipm, simplex_strategy=1);
`--replan` also re-plans from the second month cold and warm-started from the first plan (replan_*).
Target: problem + build + solve ≤ 10 s for 200 clusters × 100 workloads on 2 cores, optimal or gap ≤ 1e-4.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from gpufleet.catalog import bundled_catalog  # noqa: E402
from gpufleet.model.checks import build_portfolio  # noqa: E402
from gpufleet.model.scenario import Portfolio, Scenario  # noqa: E402
from gpufleet.planning.model import BuildOptions, build_lp  # noqa: E402
from gpufleet.planning.problem import build_problem  # noqa: E402
from gpufleet.planning.solution import extract  # noqa: E402
from gpufleet.planning.solve import solve  # noqa: E402

PROVIDERS = ["aws", "azure", "oci", "gcp", "coreweave", "lambda", "nebius", "crusoe"]
AREAS = ["us-east", "us-west", "us-central", "eu-west"]
BIG = [("GB200", 72, 11.0), ("GB300", 72, 13.0)]
HGX = [("H100", 8, 4.0), ("H200", 8, 5.0), ("B200", 8, 9.0)]


def _month(y0: int, i: int) -> str:
    return f"{y0 + i // 12}-{i % 12 + 1:02d}-01"


def _clusters(n: int, y0: int, months: int, rng: random.Random) -> list[dict]:
    out = []
    for i in range(n):
        prov, area = PROVIDERS[i % len(PROVIDERS)], AREAS[(i // len(PROVIDERS)) % len(AREAS)]
        gpu, size, price = (BIG if i % 2 == 0 else HGX)[i // 2 % (2 if i % 2 == 0 else 3)]
        top = rng.randint(200, 1000) if size == 72 else rng.randint(500, 3000)
        first = rng.randint(0, 18)
        steps = [{"date": _month(y0, first + k * 2), "domains": top * (k + 1) // 6} for k in range(6)]
        if rng.random() < 0.3:      # some capacity leaves before the end
            steps.append({"date": _month(y0, rng.randint(60, months - 1)), "domains": 0})
        out.append({"name": f"{prov}-{area}-{gpu.lower()}-{i}", "provider": prov, "region": f"{area}-{i % 3 + 1}",
                    "area": area, "gpu": gpu, "ramp": steps, "price_per_gpu_hour": price + rng.random()})
    return out


def _contracts(clusters: list[dict], y0: int, years: int) -> list[dict]:
    out = []
    for j, prov in enumerate(PROVIDERS):
        mine = [c["name"] for c in clusters if c["provider"] == prov]
        if not mine:
            continue
        term = {"provider": prov, "clusters": mine, "start": f"{y0}-01-01", "end": f"{y0 + years}-01-01"}
        if j < 3:
            out.append({"name": f"{prov}-commit", "kind": "spend_commitment", "commitment_usd": 6e9,
                        "price_per_gpu_hour": 3.5, "expansions": [], **term})
        elif j < 5:
            out.append({"name": f"{prov}-reserved", "kind": "reserved_capacity", "gpus": 5000,
                        "price_per_gpu_hour": 3.0, "expansions": [
                            {"start": f"{y0 + 2}-01-01", "gpus": 5000, "price_per_gpu_hour": 3.4}], **term})
        else:
            out.append({"name": f"{prov}-od", "kind": "on_demand", "discount": 0.1, **term})
    return out


def _workloads(n: int, y0: int, rng: random.Random, distinct: bool = False) -> list[dict]:
    out = []
    big = {"GB200": 1.0, "GB300": 1.25}
    for i in range(n):
        small = {"H100": 1.0, "H200": 1.4 + (0.001 * i if distinct else 0.0), "B200": 2.2}
        kind = ("training", "inference", "inference", "batch")[i % 4]
        if kind == "training":
            gpus = rng.choice([4608, 9216, 16416])
            start = rng.randint(0, 60)
            out.append({"kind": "training", "name": f"train-{i}", "gpus": gpus, "tp": 72, "gpu_types": big,
                        "work_gpu_hours": gpus * 24.0 * rng.randint(30, 150), "runs": rng.randint(1, 3),
                        "start": _month(y0, start), "deadline": _month(y0, min(83, start + rng.randint(6, 24)))})
        elif kind == "inference":
            areas = rng.sample(AREAS, 2)
            demand = [{"date": _month(y0, m), "replicas": {a: rng.randint(50, 1500) for a in areas}}
                      for m in range(0, 84, 6)]
            out.append({"kind": "inference", "name": f"serve-{i}", "gpus_per_replica": 8,
                        "gpu_types": {**small, **{"GB200": 2.5, "GB300": 3.0}}, "demand": demand})
        else:
            out.append({"kind": "batch", "name": f"batch-{i}", "gpus": 8, "gpu_types": small,
                        "jobs_per_day": rng.randint(100, 2000), "duration_s": 3600.0 * rng.randint(1, 8),
                        "start": _month(y0, 0), "end": _month(y0, 84)})
    return out


def synthetic(clusters: int, workloads: int, years: int, seed: int, distinct: bool = False) -> Portfolio:
    """`distinct`: every service and batch workload gets its own H200 speed, so no two streams can merge."""
    rng = random.Random(seed)
    y0 = 2026
    cl = _clusters(clusters, y0, years * 12, rng)
    doc = {"name": "bench-plan", "start": f"{y0}-01-01", "end": f"{y0 + years}-01-01",
           "providers": [{"name": p} for p in PROVIDERS if p in ("nebius", "crusoe")],
           "clusters": cl, "contracts": _contracts(cl, y0, years),
           "workloads": _workloads(workloads, y0, rng, distinct),
           "policies": {"critical_classes": ["inference"], "n1_fraction": 0.5,
                        "concentration_limits": [{"workload_class": "inference", "max_share": 0.4},
                                                 {"workload_class": "all", "max_share": 0.5}]}}
    return build_portfolio(Scenario.model_validate(doc), bundled_catalog())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clusters", type=int, default=48)
    ap.add_argument("--workloads", type=int, default=30)
    ap.add_argument("--years", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-merge", action="store_true", help="solve the LP as stated (no merged streams)")
    ap.add_argument("--option", action="append", default=[], help="a HiGHS option NAME=VALUE (repeatable)")
    ap.add_argument("--replan", action="store_true", help="also re-plan from the second month, cold and warm")
    ap.add_argument("--distinct", action="store_true", help="no two workloads alike (nothing to merge)")
    a = ap.parse_args()
    options = dict(_option(o) for o in a.option)
    p = synthetic(a.clusters, a.workloads, a.years, a.seed, a.distinct)
    clock = time.perf_counter
    t0 = clock()
    pr = build_problem(p)
    t1 = clock()
    lp = build_lp(pr, BuildOptions(merge=not a.no_merge))
    t2 = clock()
    sol = solve(lp, clock, threads=a.threads, options=options)
    plan = extract(pr, lp, sol, t2 - t1)
    S, C, P = pr.shape
    solved = lp.reduced.lp if lp.reduced is not None else lp
    extra = {"solved_variables": solved.n_cols, "solved_constraints": solved.n_rows,
             "solved_nonzeros": int(solved.matrix.nnz), "options": options}
    if a.replan:
        extra |= _replan(p, sol, a, options)
    print(json.dumps({"bench": "plan", "periods": P, "clusters": C, "workloads": len(p.workloads), "streams": S,
                      "providers": len(pr.providers), "n1": True, "threads": a.threads,
                      "problem_s": round(t1 - t0, 3), "build_s": round(t2 - t1, 3), "solve_s": round(sol.solve_s, 3),
                      "total_s": round(t1 - t0 + t2 - t1 + sol.solve_s, 3), "variables": lp.n_cols,
                      "constraints": lp.n_rows, "nonzeros": int(lp.matrix.nnz), "status": sol.status,
                      "gap": sol.gap, "iterations": sol.iterations, "objective_usd": round(plan.objective_usd, 2),
                      "unmet_gpu_hours": round(float(plan.unmet.sum() + plan.unmet_budget.sum()), 1), **extra}))


def _option(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    for cast in (int, float):
        try:
            return name, cast(value)
        except ValueError:
            pass
    return name, value


def _replan(p: Portfolio, first, a, options: dict) -> dict:
    """The simulator's monthly re-plan: the same portfolio from its second month, cold and from `first`."""
    start = p.start.replace(month=2)
    out = {}
    for tag, warm in (("cold", None), ("warm", first)):
        t0 = time.perf_counter()
        pr = build_problem(p, start=start)
        lp = build_lp(pr, BuildOptions(merge=not a.no_merge))
        sol = solve(lp, time.perf_counter, threads=a.threads, options=options, start=warm)
        out |= {f"replan_{tag}_s": round(time.perf_counter() - t0, 3), f"replan_{tag}_status": sol.status,
                f"replan_{tag}_iterations": sol.iterations, f"replan_{tag}_objective_usd": round(sol.objective_usd, 2)}
    return out


if __name__ == "__main__":
    main()
