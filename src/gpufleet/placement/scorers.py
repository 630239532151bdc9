"""Scorers. Each takes the feasible candidates and returns one score in [0, 1] per candidate.

A scorer sees all candidates at once (like the Kubernetes framework's Score + NormalizeScore), so
relative measures such as "how close to the cheapest" stay simple.
"""

from __future__ import annotations

from typing import Callable

from .costs import marginal_cost
from .request import Request
from .state import ClusterState, FleetState

Scorer = Callable[[list[ClusterState], Request, FleetState, dict], list[float]]

PRICE_FLOOR = 0.50  # $/GPU-hour added to both sides of a price ratio, so near-free capacity does not zero the rest


def _ratio_to_cheapest(prices: list[float]) -> list[float]:
    lo = min(prices)
    return [(lo + PRICE_FLOOR) / (p + PRICE_FLOOR) for p in prices]


def cost(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Effective cost under the contracts, per useful GPU-hour (divided by the job's speed there)."""
    now, speeds = fleet.now, req.speeds
    rates = [marginal_cost(cs, req.gpus, now) for cs in cands]
    ctx["cost_per_gpu_hour"] = rates
    return _ratio_to_cheapest([r / speeds[cs.gpu] for r, cs in zip(rates, cands)])


def list_price(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Cheapest list price per useful GPU-hour, ignoring every contract (the SkyPilot-like baseline)."""
    speeds = req.speeds
    return _ratio_to_cheapest([cs.list_price / speeds[cs.gpu] for cs in cands])


def packing(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Fill partly used domains first (keeping whole NVL72 racks free for big gangs) and busy clusters first."""
    g, out = req.group, []
    for cs in cands:
        dom = cs.domains
        level = dom.best_fit_level(g)
        fit = g / level if level > 0 else 0.0
        cap = dom.live_domains * dom.usable
        busy = 1.0 - dom.free_total / cap if cap else 0.0
        out.append(0.5 * fit + 0.5 * busy)
    return out


def spread(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Prefer providers carrying less of this service (replicas sharing a spread key) or of this class."""
    if req.spread_key is not None:
        total = fleet.key_used.get(req.spread_key, 0)
        used = fleet.key_provider_used
        key = req.spread_key
        return [1.0 - used.get((key, cs.provider), 0) / total if total else 1.0 for cs in cands]
    total = fleet.class_used.get(req.kind, 0)
    used = fleet.class_provider_used
    return [1.0 - used.get((req.kind, cs.provider), 0) / total if total else 1.0 for cs in cands]


def headroom(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Prefer clusters left with spare capacity after this placement (room to absorb failures)."""
    out = []
    for cs in cands:
        cap = cs.domains.live_domains * cs.domains.usable
        out.append(max(0.0, cs.domains.free_total - req.gpus) / cap if cap else 0.0)
    return out


SCORERS: dict[str, Scorer] = {"cost": cost, "list_price": list_price, "packing": packing,
                              "spread": spread, "headroom": headroom}
