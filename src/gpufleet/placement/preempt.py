"""Preemption: free enough topology-correct capacity for a request at the least lost work.

Victims are whole allocations (never part of a gang) of strictly lower priority that are preemptible.
Lost work is the GPU-hours each victim ran since its last checkpoint.
"""

from __future__ import annotations

from .request import Allocation, Request
from .state import ClusterState, FleetState


def _groups_after(cs: ClusterState, g: int, freed: dict[int, int]) -> int:
    """Groups of g that would fit if the GPUs in `freed` (domain -> GPUs) were returned."""
    dom = cs.domains
    n = dom.count_groups(g, 1 << 62)
    for d, extra in freed.items():
        if dom.is_live(d):
            n += (dom.free[d] + extra) // g - dom.free[d] // g
    return n


def _fits_without(cs: ClusterState, req: Request, victims: list[Allocation]) -> bool:
    freed: dict[int, int] = {}
    for v in victims:
        for d, used in v.parts:
            freed[d] = freed.get(d, 0) + used
    return _groups_after(cs, req.group, freed) >= req.groups


def _plan_for(cs: ClusterState, req: Request, fleet: FleetState) -> list[Allocation] | None:
    prio = fleet.preemptible_prio[cs.index]
    if not any(p < req.priority for p in prio):
        return None
    now = fleet.now
    pool = sorted((a for a in fleet.cluster_allocs[cs.index].values()
                   if a.request.preemptible and a.request.priority < req.priority),
                  key=lambda a: (a.lost_gpu_hours(now), -a.gpus, a.request.id))
    chosen: list[Allocation] = []
    for a in pool:
        chosen.append(a)
        if _fits_without(cs, req, chosen):
            break
    else:
        return None
    # Drop victims that turned out unnecessary, most lost work first.
    for a in sorted(chosen, key=lambda a: -a.lost_gpu_hours(now)):
        rest = [v for v in chosen if v is not a]
        if rest and _fits_without(cs, req, rest):
            chosen = rest
    return chosen


def choose_victims(fleet: FleetState, req: Request, clusters: list[ClusterState]) -> tuple[ClusterState, list[str]] | None:
    """The cluster and victim set that frees room for `req` at the least lost work, or None."""
    best = None
    for cs in clusters:
        victims = _plan_for(cs, req, fleet)
        if victims is None:
            continue
        lost = sum(v.lost_gpu_hours(fleet.now) for v in victims)
        key = (lost, len(victims), cs.index)
        if best is None or key < best[0]:
            best = (key, cs, victims)
    if best is None:
        return None
    return best[1], sorted(v.request.id for v in best[2])
