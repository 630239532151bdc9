"""What-if sweeps: the cross product of seeds, what-ifs and profiles, each one simulation, and the spread of
their outcomes per what-if and profile. Pure: the runs are done by whoever is given `Run`s (a process pool,
Ray); this module only says what to run and sums up what came back.

A what-if is `base`, `drop:PROVIDER` (the provider is down the whole window: its capacity gone, its
commitments still owed) or `fail:TARGET@START/DURATION` (a scheduled outage, as `simulate --fail`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..model.scenario import Portfolio

TIMING_KEYS = ("wall_s", "events_per_s")   # the only parts of a result that depend on the machine

# What the report gives the spread of, each read from one simulation result.
METRICS: dict[str, Any] = {
    "cost_usd": lambda r: r["cost_usd"],
    "committed_wasted_usd": lambda r: r["commitment_wasted_usd"] + r["reserved_wasted_usd"],
    "avg_wait_s": lambda r: r["avg_wait_s"],
    "p99_wait_s": lambda r: r["p99_wait_s"],
    "demand_served": lambda r: r["inference_slo_attainment"],
    "lost_gpu_hours": lambda r: r["lost_gpu_hours"],
}


class SweepError(ValueError):
    """A what-if that cannot be read; the message says what was expected."""


@dataclass(frozen=True)
class Run:
    what_if: str
    profile: str | None
    seed: int
    fail: tuple[str, ...]      # the outages this what-if adds (simulate's --fail syntax)

    def key(self) -> dict[str, Any]:
        return {"what_if": self.what_if, "profile": self.profile, "seed": self.seed}


def outages_of(spec: str, p: Portfolio) -> tuple[str, ...]:
    """The scheduled outages a what-if stands for."""
    kind, _, arg = spec.partition(":")
    if spec == "base":
        return ()
    if kind == "drop" and arg:
        if arg not in p.providers:
            raise SweepError(f"--what-if {spec}: no provider {arg!r} (providers: {', '.join(sorted(p.providers))})")
        days = (p.end - p.start).days + 1
        return (f"{arg}@{p.start.isoformat()}T00:00/{days}d",)
    if kind == "fail" and arg:
        return (arg,)
    raise SweepError(f"--what-if {spec!r}: expected base, drop:PROVIDER or fail:TARGET@START/DURATION")


def runs(p: Portfolio, seeds: int, what_ifs: list[str], profiles: list[str | None], first_seed: int = 0) -> list[Run]:
    """Every (what-if, profile, seed), the base case first; each seed is the same draw of failures and work
    under every what-if and profile, so they differ only by what they change."""
    specs = ["base"] + [w for w in what_ifs if w != "base"]
    failing = {w: outages_of(w, p) for w in specs}
    return [Run(w, prof, first_seed + s, failing[w]) for w in specs for prof in (profiles or [None])
            for s in range(seeds)]


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A result without its timings: what two runs of the same simulation must share, byte for byte."""
    out = {k: v for k, v in result.items() if k not in TIMING_KEYS}
    if out.get("plans"):
        out["plans"] = [{k: v for k, v in pl.items() if k != "wall_s"} for pl in out["plans"]]
    return out


def _spread(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    p10, p50, p90 = np.percentile(a, [10, 50, 90])
    return {"p10": float(p10), "p50": float(p50), "p90": float(p90), "mean": float(a.mean())}


def summarize(done: list[tuple[Run, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per (what-if, profile): how many runs, and P10/P50/P90 (and mean) of each metric."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run, result in done:
        groups.setdefault((run.what_if, result["profile"]), []).append(result)
    return [{"what_if": w, "profile": prof, "runs": len(rs),
             **{name: _spread([f(r) for r in rs]) for name, f in METRICS.items()}}
            for (w, prof), rs in groups.items()]


def run_json(run: Run) -> dict[str, Any]:
    return asdict(run) | {"fail": list(run.fail)}
