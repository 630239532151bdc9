"""The live bill's cost: `server.spend.spend` over a year of placements on a 614,400-GPU portfolio.

    python bench/spend.py                  # 200,000 placements over 2026, billed hour by hour (8,760 ticks)
    python bench/spend.py --placements 1000000 --json

The control loop recomputes the spend commitments' burn-down this way every 5 minutes, and `GET /v1/spend`
on each call, so it must stay well under a second at fleet scale. Baseline, measured in the same run: the
same bill with each tick's allocated GPU-seconds summed over every placement (O(ticks x placements)), which
the prefix-sum integral in `spend` replaces. Both must give the same bill (checked).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleets import big_portfolio  # noqa: E402

from gpufleet.server import spend as S  # noqa: E402


def placements(portfolio, n: int, t0: float, t1: float, seed: int) -> list[S.Usage]:
    rng = np.random.default_rng(seed)
    names = list(portfolio.clusters)
    starts = rng.uniform(t0 - 86_400, t1, n)
    dur = rng.lognormal(np.log(3600), 1.5, n)
    gpus = rng.choice([1, 2, 4, 8, 72, 288], n, p=[0.6, 0.1, 0.1, 0.15, 0.04, 0.01])
    which = rng.integers(0, len(names), n)
    running = rng.random(n) < 0.02
    return [S.Usage(names[w], int(g), float(a), None if r else float(a + d))
            for w, g, a, d, r in zip(which, gpus, starts, dur, running)]


def naive_integral(usage: list[S.Usage], edges: np.ndarray, until: float) -> np.ndarray:
    """Allocated GPU-seconds up to each edge, summing every placement's overlap at every edge."""
    a = np.array([u.start for u in usage])
    b = np.array([until if u.end is None else u.end for u in usage])
    g = np.array([u.gpus for u in usage], dtype=float)
    a, b = np.clip(a, edges[0], until), np.clip(b, edges[0], until)
    return np.array([float(np.sum(g * np.clip(np.minimum(b, t) - a, 0, None))) for t in edges])


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--placements", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    portfolio = big_portfolio()
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    t1 = datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp()
    usage = placements(portfolio, a.placements, t0, t1, a.seed)
    fees = [S.Fee(t0 + i * 86_400, "aws", None, "capacity_block", 25_000.0, f"cr-{i}") for i in range(50)]

    fast_s, fast = timed(lambda: S.spend(portfolio, usage, fees, t0, t1), a.repeat)
    with mock.patch.object(S, "_integral", naive_integral):
        naive_s, naive = timed(lambda: S.spend(portfolio, usage, fees, t0, t1), max(1, a.repeat // 2))
    assert abs(fast["total_usd"] - naive["total_usd"]) <= 1e-6 * max(1.0, naive["total_usd"]), (fast, naive)
    gpus = sum(c.max_domains * c.usable_gpus_per_domain for c in portfolio.clusters.values())
    result = {"gpus": gpus, "clusters": len(portfolio.clusters), "placements": a.placements,
              "window_days": (t1 - t0) / 86_400, "spend_s_median": round(fast_s, 4),
              "naive_s_median": round(naive_s, 4), "speedup": round(naive_s / fast_s, 1),
              "total_usd": round(fast["total_usd"], 2), "repeat": a.repeat}
    if a.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>16}: {v:,}" if isinstance(v, (int, float)) else f"{k:>16}: {v}")


if __name__ == "__main__":
    main()
