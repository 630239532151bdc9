"""Placement throughput on a 500,000+ GPU fleet under a stream of arrivals and departures.

    python bench/placement.py [--requests 1000000] [--naive-requests 20000] [--seed 1]

Prints one JSON line: decisions_per_s (decisions over the time spent deciding and committing them, the same
span p99_decision_us measures), decisions_per_s_counting_releases (the departures' releases added to that
time), peak_rss_mb, placed, rejected, and the same stream's prefix replayed with a naive scan-every-domain
index (`naive_*`, `speedup_vs_naive`, compared on decisions_per_s).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import resource
import sys
import time
from array import array
from datetime import date

sys.path.insert(0, os.path.dirname(__file__))

from fleets import big_portfolio, request_stream  # noqa: E402
from naive import ScanDomains  # noqa: E402

from gpufleet.placement.domains import Domains  # noqa: E402
from gpufleet.placement.engine import Engine  # noqa: E402
from gpufleet.placement.state import to_seconds  # noqa: E402


def run(portfolio, n: int, seed: int, domains_cls, load: float = 1.2) -> dict:
    t0 = to_seconds(date(2026, 6, 1))
    engine = Engine(portfolio, t0, "cost", domains_cls=domains_cls)
    capacity = sum(c.capacity for c in engine.state.clusters)
    departures: list[tuple[float, str]] = []
    lat = array("q")
    placed = rejected = preempted = 0
    busy = 0.0          # decide + commit + release
    deciding = 0.0      # decide + commit: what one decision costs
    released = 0
    util_sum, util_n = 0.0, 0
    clock = time.perf_counter_ns
    for arrival, duration, req in request_stream(n, seed, mean_gpus_busy=load * capacity):
        now = t0 + arrival
        while departures and departures[0][0] <= now:
            _, rid = heapq.heappop(departures)
            s = clock()
            engine.release(rid)
            busy += clock() - s
            released += 1
        engine.state.now = now
        s = clock()
        d = engine.decide(req)
        if d.placed:
            engine.commit(d)
        e = clock()
        lat.append(e - s)
        busy += e - s
        deciding += e - s
        if len(lat) % 1000 == 0:
            util_sum += engine.state.class_used["all"] / capacity
            util_n += 1
        if d.placed:
            placed += 1
            preempted += len(d.victims)
            heapq.heappush(departures, (now + duration, req.id))
        else:
            rejected += 1
    ordered = sorted(lat)
    return {"decisions": len(lat), "busy_s": busy / 1e9, "decisions_per_s": len(lat) / (deciding / 1e9),
            "with_releases_per_s": len(lat) / (busy / 1e9), "releases": released,
            "release_us_mean": (busy - deciding) / 1e3 / max(1, released),
            "p50_decision_us": ordered[len(ordered) // 2] / 1e3, "p99_decision_us": ordered[int(len(ordered) * 0.99)] / 1e3,
            "placed": placed, "rejected": rejected, "preempted": preempted, "gpus": capacity,
            "mean_utilization": util_sum / max(1, util_n),
            "allocations_at_end": len(engine.state.allocations)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--naive-requests", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    portfolio = big_portfolio()
    wall = time.perf_counter()
    fast = run(portfolio, args.requests, args.seed, Domains)
    wall = time.perf_counter() - wall
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"bench": "placement", "gpus": fast["gpus"], "clusters": len(portfolio.clusters),
           "providers": len({c.provider for c in portfolio.clusters.values()}),
           "requests": args.requests, "decisions_per_s": round(fast["decisions_per_s"]),
           "decisions_per_s_counting_releases": round(fast["with_releases_per_s"]),
           "release_us_mean": round(fast["release_us_mean"], 2),
           "p50_decision_us": round(fast["p50_decision_us"], 1), "p99_decision_us": round(fast["p99_decision_us"], 1),
           "peak_rss_mb": round(rss_mb, 1), "placed": fast["placed"], "rejected": fast["rejected"],
           "preempted": fast["preempted"], "mean_utilization": round(fast["mean_utilization"], 3),
           "wall_s": round(wall, 1)}
    if args.naive_requests:
        naive = run(portfolio, args.naive_requests, args.seed, ScanDomains)
        prefix = run(portfolio, args.naive_requests, args.seed, Domains)
        out |= {"naive_requests": args.naive_requests, "naive_decisions_per_s": round(naive["decisions_per_s"]),
                "indexed_decisions_per_s_same_prefix": round(prefix["decisions_per_s"]),
                "speedup_vs_naive": round(prefix["decisions_per_s"] / naive["decisions_per_s"], 1),
                "naive_same_outcome": (naive["placed"], naive["rejected"]) == (prefix["placed"], prefix["rejected"])}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
