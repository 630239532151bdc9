"""Feasibility filters. Each is small, named, and returns a Reject with numbers, or None to pass.

Static filters read only the request's shape and the cluster's fixed figures, so their verdicts are
cached per shape; dynamic filters read the live state on every decision.
"""

from __future__ import annotations

from typing import Callable

from .guide import Guide
from .request import Reject, Request
from .state import ClusterState, FleetState

Filter = Callable[[ClusterState, Request, FleetState], "Reject | None"]
BatchFilter = Callable[[list[ClusterState], Request, FleetState], "tuple[list[ClusterState], list]"]


# -- static -------------------------------------------------------------------------------------------
def gpu_type(cs: ClusterState, req: Request, fleet: FleetState) -> Reject | None:
    if cs.gpu in req.speeds:
        return None
    return Reject("gpu_type", "GPU type {} is not among the allowed {}", (cs.gpu, ", ".join(sorted(req.speeds))))


def region_provider(cs: ClusterState, req: Request, fleet: FleetState) -> Reject | None:
    if req.providers is not None and cs.provider not in req.providers:
        return Reject("region_provider", "provider {} is not allowed ({})", (cs.provider, ", ".join(sorted(req.providers))))
    if req.regions is not None and cs.region not in req.regions and cs.area not in req.regions:
        return Reject("region_provider", "region {} (area {}) is not allowed ({})",
                      (cs.region, cs.area, ", ".join(sorted(req.regions))))
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


# -- dynamic: each takes all candidates at once and returns (kept, rejected) ----------------------------
# Batch form keeps the common case (everything passes) to one list comprehension per filter;
# a Reject with its numbers is built only for clusters that fail.
Rejected = list[tuple[ClusterState, Reject]]


def health(cands: list[ClusterState], req: Request, fleet: FleetState) -> tuple[list[ClusterState], Rejected]:
    down = fleet.providers_down
    ok = [cs for cs in cands if cs.up and cs.provider not in down] if down else [cs for cs in cands if cs.up]
    if len(ok) == len(cands):
        return ok, []
    return ok, [(cs, Reject("health", "provider {} is down", (cs.provider,)) if cs.provider in down
                 else Reject("health", "cluster {} is down", (cs.name,))) for cs in cands if cs not in ok]


def capacity(cands: list[ClusterState], req: Request, fleet: FleetState) -> tuple[list[ClusterState], Rejected]:
    g, n = req.group, req.groups
    if n == 1:
        fits = [(cs.domains.mask >> g) != 0 for cs in cands]
    else:
        fits = [cs.domains.count_groups(g, n) >= n for cs in cands]
    if all(fits):
        return cands, []
    return ([cs for cs, f in zip(cands, fits) if f],
            [(cs, _short_of(cs, g, n)) for cs, f in zip(cands, fits) if not f])


CAPACITY_SHORT = ("needs {:,} group(s) of {} GPUs in one fabric, {:,} free now "
                  "({:,} GPUs free in {:,} live domains)")


def _short_of(cs: ClusterState, g: int, n: int) -> Reject:
    dom = cs.domains
    # The numbers are counted when the message is read (the engine re-checks a cluster whenever it changes).
    return Reject("capacity", CAPACITY_SHORT,
                  detail=lambda: (n, g, dom.count_groups(g, n), dom.free_total, dom.live_domains))


def concentration(cands: list[ClusterState], req: Request, fleet: FleetState) -> tuple[list[ClusterState], Rejected]:
    """A provider already over its cap for a class takes no more of it (overshoot is at most one request)."""
    if not fleet.limits:
        return cands, []
    over: dict[str, Reject] = {}
    for cls, provider, cap in fleet.limits:
        if cls != "all" and cls != req.kind:
            continue
        total = fleet.class_used.get(cls, 0)
        if total <= 0:
            continue
        for p in (fleet.providers if provider is None else (provider,)):
            mine = fleet.class_provider_used.get((cls, p), 0)
            if mine > cap * total and p not in over:
                over[p] = Reject("concentration", "provider {} already carries {:.0%} of {} work, over its "
                                 "cap of {:.0%}", (p, mine / total, cls, cap))
    if not over:
        return cands, []
    return [cs for cs in cands if cs.provider not in over], [(cs, over[cs.provider]) for cs in cands if cs.provider in over]


def cap_reservation(cands: list[ClusterState], req: Request, fleet: FleetState
                    ) -> tuple[list[ClusterState], Rejected]:
    """Room under a concentration cap that the plan gives other work: a cap is a budget its class shares, and
    the plan splits it where it serves the most (a provider's GPUs go to the work worth most per GPU there).
    Work beyond its own plan on a provider may use only what is left of the provider's room under the cap
    once the GPUs the plan gives other work of the class there, and it has not taken yet, are held. Without
    a plan, or where no cap binds, nothing is held."""
    g = fleet.guide
    if g is None or not fleet.limits or not g.classes:
        return cands, []
    t = _provider_plan(g, g.period(fleet.now), fleet)
    w, gpus, used = req.workload, req.gpus, fleet.workload_used
    over: dict[str, Reject] = {}
    for cls, provider, cap in fleet.limits:
        if cls != "all" and cls != req.kind:
            continue
        for q in {cs.provider for cs in cands} if provider is None else {provider}:
            if q in over:
                continue
            room = cap * fleet.class_used.get(cls, 0) - fleet.class_provider_used.get((cls, q), 0)
            if room >= gpus + t.by_class.get((cls, q), 0.0):
                continue   # room for this and all the class's plan here: nothing to hold
            idx = t.clusters[q]
            if w is not None and (w, q) in t.planned:
                taken = 0
                for i in idx:
                    taken += used.get((w, i), 0)
                if taken + gpus <= t.planned[(w, q)]:
                    continue   # within its own plan here
            held = 0.0
            for o, k in g.classes.items():
                planned = t.planned.get((o, q), 0.0)
                if o != w and planned > 0 and cls in ("all", k):
                    left = planned
                    for i in idx:
                        left -= used.get((o, i), 0)
                    held += max(0.0, left)
            if held > 0 and gpus > room - held:
                over[q] = Reject("cap_reservation", "provider {} has room for {:,.0f} more GPUs of {} work under its "
                                 "cap of {:.0%}; the plan holds {:,.0f} of them for other work",
                                 (q, max(room, 0.0), cls, cap, held))
    if not over:
        return cands, []
    return [cs for cs in cands if cs.provider not in over], [(cs, over[cs.provider]) for cs in cands if cs.provider in over]


class _ProviderPlan:
    """One period of a guide summed per provider: what `cap_reservation` reads on every decision."""

    def __init__(self, g: Guide, p: int, fleet: FleetState):
        self.key = (g, p, fleet)
        self.clusters: dict[str, list[int]] = {}
        for cs in fleet.clusters:
            self.clusters.setdefault(cs.provider, []).append(cs.index)
        self.planned: dict[tuple[str, str], float] = {}     # (workload, provider) -> GPUs planned
        self.by_class: dict[tuple[str, str], float] = {}    # (class or "all", provider) -> GPUs planned
        for q, idx in self.clusters.items():
            for o in g.classes:
                row = g.workloads[o][p]
                self.planned[(o, q)] = sum(row[i] for i in idx)
            for k, grid in g.kinds.items():
                n = sum(grid[p][i] for i in idx)
                self.by_class[(k, q)] = n
                self.by_class[("all", q)] = self.by_class.get(("all", q), 0.0) + n


_LAST: list[_ProviderPlan] = []   # the one table in use: a guide changes once a period at most


def _provider_plan(g: Guide, p: int, fleet: FleetState) -> _ProviderPlan:
    if _LAST and _LAST[0].key[0] is g and _LAST[0].key[1] == p and _LAST[0].key[2] is fleet:
        return _LAST[0]
    t = _ProviderPlan(g, p, fleet)
    _LAST[:] = [t]
    return t


def reservation(cands: list[ClusterState], req: Request, fleet: FleetState) -> tuple[list[ClusterState], Rejected]:
    """Room the plan keeps for its gangs: the whole runs the plan expects on each cluster this period
    (`Guide.held`) are held (from a lead before the workload's first run) until they hold their GPUs, in
    free groups of their tensor-parallel size, and other work of no higher priority may not break into them.
    Without a plan, or with no gang in it, nothing is held."""
    g = fleet.guide
    if g is None or not g.gangs:
        return cands, []
    now, used = fleet.now, fleet.workload_used
    p = g.period(now)
    held: list[dict[int, int]] = [{} for _ in cands]   # per candidate: group size -> groups held
    for w, (_, group, priority, hold_from) in g.gangs.items():
        if w == req.workload or req.priority > priority or now < hold_from:
            continue
        row = g.held[w][p]
        for j, cs in enumerate(cands):
            hold = row[cs.index]
            if hold > 0:
                short = int(hold) - used.get((w, cs.index), 0)
                if short > 0:
                    held[j][group] = held[j].get(group, 0) + -(-short // group)
    out: Rejected = []
    for cs, h in zip(cands, held):
        for group, need in h.items():
            lost = _groups_lost(cs, req, group)
            if cs.domains.count_groups(group, need + lost) < need + lost:
                out.append((cs, Reject("reservation", "the plan holds {:,} free group(s) of {} GPUs here for its gangs "
                                       "and this request would break {:,} of them", (need, group, lost))))
                break
    if not out:
        return cands, []
    bad = {cs.index for cs, _ in out}
    return [cs for cs in cands if cs.index not in bad], out


def _groups_lost(cs: ClusterState, req: Request, g: int) -> int:
    """Free groups of g GPUs the request would take: one group goes best-fit into the fullest domain it fits."""
    if req.groups == 1:
        k = cs.domains.best_fit_level(req.group)
        return k // g - (k - req.group) // g if k >= 0 else 0
    return -(-req.gpus // g)


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
# Cluster filters read one cluster's state only, so the engine caches their verdict until that cluster changes;
# fleet filters read fleet-wide counters and run on every decision.
CLUSTER_FILTERS: dict[str, BatchFilter] = {"health": health, "capacity": capacity}
FLEET_FILTERS: dict[str, BatchFilter] = {"concentration": concentration, "cap_reservation": cap_reservation,
                                         "reservation": reservation}
