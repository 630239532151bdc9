"""Feasibility filters. Each is small, named, and returns a Reject with numbers, or None to pass.

Static filters read only the request's shape and the cluster's fixed figures, so their verdicts are
cached per shape; dynamic filters read the live state on every decision.
"""

from __future__ import annotations

from typing import Callable

from .request import Reject, Request
from .state import ClusterState, FleetState

Filter = Callable[[ClusterState, Request, FleetState], "Reject | None"]


# -- static -------------------------------------------------------------------------------------------
def gpu_type(cs: ClusterState, req: Request, fleet: FleetState) -> Reject | None:
    if cs.gpu in req.speeds:
        return None
    return Reject("gpu_type", "GPU type {} is not among the allowed {}", (cs.gpu, ", ".join(sorted(req.speeds))))


def region_provider(cs: ClusterState, req: Request, fleet: FleetState) -> Reject | None:
    if req.providers is not None and cs.provider not in req.providers:
        return Reject("region_provider", "provider {} is not allowed ({})", (cs.provider, ", ".join(sorted(req.providers))))
    if req.regions is not None and cs.region not in req.regions:
        return Reject("region_provider", "region {} is not allowed ({})", (cs.region, ", ".join(sorted(req.regions))))
    return None


def topology(cs: ClusterState, req: Request, fleet: FleetState) -> Reject | None:
    usable = cs.domains.usable
    if req.group > usable:
        return Reject("topology", "a tensor-parallel group of {} GPUs cannot sit in one NVLink domain of {} usable GPUs",
                      (req.group, usable))
    most = len(cs.domains.free) * (usable // req.group) * req.group
    if cs.fabric_max is not None:
        most = min(most, cs.fabric_max)
    if req.gpus > most:
        return Reject("topology", "a gang of {:,} GPUs exceeds this cluster's fabric ({:,} GPUs at most in groups of {})",
                      (req.gpus, most, req.group))
    return None


# -- dynamic ------------------------------------------------------------------------------------------
def health(cs: ClusterState, req: Request, fleet: FleetState) -> Reject | None:
    if cs.provider in fleet.providers_down:
        return Reject("health", "provider {} is down", (cs.provider,))
    if not cs.up:
        return Reject("health", "cluster {} is down", (cs.name,))
    return None


def capacity(cs: ClusterState, req: Request, fleet: FleetState) -> Reject | None:
    dom, g, n = cs.domains, req.group, req.groups
    if n == 1:
        if dom.fits_one(g):
            return None
    elif dom.count_groups(g, n) >= n:
        return None
    have = dom.count_groups(g, n)
    return Reject("capacity", "needs {:,} group(s) of {} GPUs in one fabric, {:,} free now ({:,} GPUs free in {:,} live domains)",
                  (n, g, have, dom.free_total, dom.live_domains))


def concentration(cs: ClusterState, req: Request, fleet: FleetState) -> Reject | None:
    """A provider already over its cap for a class takes no more of it (overshoot is at most one request)."""
    for cls, provider, cap in fleet.limits:
        if (cls != "all" and cls != req.kind) or (provider is not None and provider != cs.provider):
            continue
        total = fleet.class_used.get(cls, 0)
        if total <= 0:
            continue
        mine = fleet.class_provider_used.get((cls, cs.provider), 0)
        if mine > cap * total:
            return Reject("concentration", "provider {} already carries {:.0%} of {} work, over its cap of {:.0%}",
                          (cs.provider, mine / total, cls, cap))
    return None


# -- cluster-independent (checked once per decision) -------------------------------------------------
def quota(req: Request, fleet: FleetState) -> Reject | None:
    """Team quota, with borrowing of idle quota inside the team's cohort (Kueue-style)."""
    if not fleet.quota:
        return None
    own = fleet.quota.get(req.team)
    if own is None:
        return Reject("quota", "team {} has no quota in this portfolio", (req.team,))
    used = fleet.team_used.get(req.team, 0)
    if used + req.gpus <= own:
        return None
    cohort = fleet.cohort_of.get(req.team)
    if cohort is None:
        return Reject("quota", "team {} uses {:,} of {:,} GPUs; {:,} more do not fit and it has no cohort to borrow from",
                      (req.team, used, own, req.gpus))
    limit = fleet.borrow_limit.get(req.team)
    borrow = used + req.gpus - own
    if limit is not None and borrow > limit:
        return Reject("quota", "team {} would borrow {:,} GPUs, over its borrowing limit of {:,}", (req.team, borrow, limit))
    pool, pool_used = fleet.cohort_quota[cohort], fleet.cohort_used.get(cohort, 0)
    if pool_used + req.gpus > pool:
        return Reject("quota", "cohort {} uses {:,} of {:,} GPUs; {:,} more do not fit", (cohort, pool_used, pool, req.gpus))
    return None


# The registry: one literal map. Order here is the order of evaluation in the pipeline.
STATIC_FILTERS: dict[str, Filter] = {"gpu_type": gpu_type, "region_provider": region_provider, "topology": topology}
DYNAMIC_FILTERS: dict[str, Filter] = {"health": health, "capacity": capacity, "concentration": concentration}
