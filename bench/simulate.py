"""Simulator speed: the whole Philly job list, and a synthetic year of 1,000,000 jobs on a 500,000-GPU portfolio.

    python bench/simulate.py [--jobs 1000000] [--philly PATH] [--skip-philly] [--skip-year]

Prints one JSON line per run with events_per_s, wall_s and peak_rss_mb (peak RSS of this process so far).
The Philly run needs ../shared/data/traces/philly_pollux/ (skipped when absent).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from datetime import date

sys.path.insert(0, os.path.dirname(__file__))

from fleets import big_portfolio, request_stream  # noqa: E402

from gpufleet.placement.state import to_seconds  # noqa: E402
from gpufleet.scheduling.work import Work as SimJob  # noqa: E402
from gpufleet.simulation.simulator import SimOptions, Simulator  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHILLY = os.path.join(ROOT, "..", "shared", "data", "traces", "philly_pollux")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_year(n: int, seed: int) -> dict:
    """1M jobs over 2026 on the 614,400-GPU bench fleet, random domain failures on."""
    p = big_portfolio()
    t0 = to_seconds(date(2026, 1, 1))
    year = 365 * 86400.0
    capacity = sum(c.max_domains * c.usable_gpus_per_domain for c in p.clusters.values())

    def jobs():  # created as they arrive: memory follows the work in flight, not the whole year
        for arrival, duration, req in request_stream(n, seed, mean_gpus_busy=0.75 * capacity, span_s=year):
            yield SimJob(req, t0 + arrival, duration, kind=req.kind)

    opts = SimOptions(queue="priority", start_s=t0, until_s=t0 + year, random_failures=True,
                      scenario_workloads=False)
    sim = Simulator(p, "cost", opts, random.Random(seed))
    sim.add_stream(jobs())
    r = sim.run(time.perf_counter)
    return {"bench": "simulate-year", "gpus": capacity, "jobs": r["jobs"], "finished": r["finished"],
            "queued": r["queued"], "running": r["running"], "failed": r["failed"],
            "failures": sum(r["failures"].values()), "restarts": r["restarts"], "utilization": r["utilization"],
            "events": r["events"], "events_per_s": round(r["events"] / r["wall_s"]), "wall_s": r["wall_s"],
            "peak_rss_mb": round(rss_mb(), 1)}


def philly(path: str, queue: str) -> dict:
    from gpufleet.simulation.fidelity import philly_replay
    r = philly_replay(os.path.join(path, "philly.csv"), os.path.join(path, "philly_vc_nodes_helios_qssf.csv"),
                      queue=queue, clock=time.perf_counter)
    res = r["result"]
    return {"bench": "simulate-philly", "queue": queue, "jobs": res["jobs"], "finished": res["finished"],
            "events": res["events"], "events_per_s": round(res["events"] / res["wall_s"]),
            "wall_s": res["wall_s"], "avg_wait_s": res["avg_wait_s"], "peak_rss_mb": round(rss_mb(), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--philly", default=PHILLY)
    ap.add_argument("--queue", default="fifo")
    ap.add_argument("--skip-philly", action="store_true")
    ap.add_argument("--skip-year", action="store_true")
    args = ap.parse_args()
    if not args.skip_philly:
        if os.path.exists(os.path.join(args.philly, "philly.csv")):
            print(json.dumps(philly(args.philly, args.queue)), flush=True)
        else:
            print(json.dumps({"bench": "simulate-philly", "skipped": f"no trace at {args.philly}"}), flush=True)
    if not args.skip_year:
        print(json.dumps(synthetic_year(args.jobs, args.seed)), flush=True)


if __name__ == "__main__":
    main()
