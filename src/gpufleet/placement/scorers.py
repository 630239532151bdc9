"""Scorers. Each takes the feasible candidates and returns one score in [0, 1] per candidate.

A scorer sees all candidates at once (like the Kubernetes framework's Score + NormalizeScore), so
relative measures such as "how close to the cheapest" stay simple.
"""

from __future__ import annotations

from typing import Callable

from .costs import marginal_cost
from .guide import Guide
from .request import Request
from .state import ClusterState, FleetState

Scorer = Callable[[list[ClusterState], Request, FleetState, dict], list[float]]

PRICE_FLOOR = 0.50  # $/GPU-hour added to every rate before a price ratio, so near-free capacity does not zero the rest


def _ratio_to_cheapest(prices: list[float]) -> list[float]:
    top = min(prices)
    return [top / p for p in prices]


def _per_useful_hour(rates: list[float], cands: list[ClusterState], speeds: dict[str, float]) -> list[float]:
    """$/GPU-hour → $ per useful GPU-hour, each rate floored first: even paid-for capacity is worth something,
    so of two free clusters the faster one is the cheaper per unit of work."""
    return [(r + PRICE_FLOOR) / speeds[cs.gpu] for r, cs in zip(rates, cands)]


def cost(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Effective cost under the contracts, per useful GPU-hour (divided by the job's speed there)."""
    now, speeds, gpus = fleet.now, req.speeds, req.gpus
    by_group: dict[int, float] = {}
    shared = [None] * fleet.cost_term_count
    rates = []
    for cs in cands:
        if not cs.contracts:
            rates.append(cs.list_price)
            continue
        r = by_group.get(cs.cost_group)
        if r is None:
            r = by_group[cs.cost_group] = marginal_cost(cs, gpus, now, shared)
        rates.append(r)
    ctx["cost_per_gpu_hour"] = rates
    return _ratio_to_cheapest(_per_useful_hour(rates, cands, speeds))


def list_price(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Cheapest list price per useful GPU-hour, ignoring every contract (the SkyPilot-like baseline)."""
    return _ratio_to_cheapest(_per_useful_hour([cs.list_price for cs in cands], cands, req.speeds))


def packing(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Fill partly used domains first (keeping whole NVL72 racks free for big gangs) and busy clusters first.

    Half the score is how snugly the first group fits (g / free GPUs of the fullest domain that fits it),
    half is how busy the cluster is.
    """
    g, out = req.group, []
    for cs in cands:
        dom = cs.domains
        m = dom.mask >> g
        fit = g / (g + (m & -m).bit_length() - 1) if m else 0.0
        cap = dom.live_domains * dom.usable
        out.append(0.5 * fit + (0.5 - 0.5 * dom.free_total / cap if cap else 0.0))
    return out


def spread(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Prefer providers carrying less of this service (replicas sharing a spread key) or of this class."""
    if req.spread_key is not None:
        key, total, used = req.spread_key, fleet.key_used.get(req.spread_key, 0), fleet.key_provider_used
    else:
        key, total, used = req.kind, fleet.class_used.get(req.kind, 0), fleet.class_provider_used
    if not total:
        return [1.0] * len(cands)
    by_provider = {p: 1.0 - used.get((key, p), 0) / total for p in fleet.providers}
    return [by_provider[cs.provider] for cs in cands]


def headroom(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Prefer clusters left with spare capacity after this placement (room to absorb failures)."""
    gpus, out = req.gpus, []
    for cs in cands:
        dom = cs.domains
        cap = dom.live_domains * dom.usable
        left = dom.free_total - gpus
        out.append(left / cap if cap and left > 0 else 0.0)
    return out


def plan(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Follow the plan: 1 where the plan gives this workload (else its class) room for the request on the
    cluster now, the share of the request that fits in what is left of it, 0 where it plans none. Room the
    plan gives a gang whose runs have not begun to be held (`reservation`) counts as room for anyone.
    Without a plan every candidate scores 1 (the other scorers decide)."""
    g = fleet.guide
    if g is None:
        return [1.0] * len(cands)
    p, gpus, workload = g.period(fleet.now), req.gpus, req.workload
    spare = _not_yet_held(g, p, fleet.now, workload, req.kind)
    grid = g.workloads.get(workload) if workload is not None else None
    if grid is not None and workload is not None:
        row, used = grid[p], fleet.workload_used
        return [min(1.0, max(0.0, row[cs.index] + (spare[cs.index] if spare else 0.0)
                             - used.get((workload, cs.index), 0)) / gpus) for cs in cands]
    kind_grid = g.kinds.get(req.kind)
    if kind_grid is None and not spare:
        return [0.0] * len(cands)
    krow = kind_grid[p] if kind_grid is not None else None
    return [min(1.0, max(0.0, (krow[cs.index] if krow else 0.0) + (spare[cs.index] if spare else 0.0)
                         - cs.kind_used.get(req.kind, 0)) / gpus) for cs in cands]


def _not_yet_held(g: Guide, p: int, now: float, workload: str | None, kind: str) -> list[float] | None:
    """Per cluster, the GPUs the plan gives this period to gangs whose room is not held yet (None: none)."""
    early = [w for w, gang in g.gangs.items() if now < gang.hold_from_s and w != workload]
    if not early or (workload is None and kind == "training"):
        return None
    rows = [g.workloads[w][p] for w in early]
    return [sum(col) for col in zip(*rows)]


def shadow(cands: list[ClusterState], req: Request, fleet: FleetState, ctx: dict) -> list[float]:
    """Cost at the plan's prices: the effective cost under the contracts plus what the plan says one more
    GPU-hour of the cluster's capacity is worth (its shadow price: capacity others need dearly costs more
    than its contract rate), per useful GPU-hour. Without a plan it is the `cost` scorer."""
    g = fleet.guide
    scores = cost(cands, req, fleet, ctx)
    if g is None:
        return scores
    row, speeds = g.value[g.period(fleet.now)], req.speeds
    rates = ctx["cost_per_gpu_hour"]
    return _ratio_to_cheapest(_per_useful_hour([r + row[cs.index] for r, cs in zip(rates, cands)], cands, speeds))


SCORERS: dict[str, Scorer] = {"cost": cost, "list_price": list_price, "packing": packing,
                              "spread": spread, "headroom": headroom, "plan": plan, "shadow": shadow}
# Scorers that read only the request's shape and one cluster's state: the engine caches their weighted sum
# per (shape, cluster) until that cluster changes (Borg-style score caching). The others read fleet-wide
# counters (contract burn, provider shares) and run on every decision.
CLUSTER_SCOPED = frozenset({"packing", "headroom"})  # list_price is relative to the cheapest feasible, so per decision
