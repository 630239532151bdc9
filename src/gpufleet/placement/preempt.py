"""Preemption: free enough topology-correct capacity for a request at the least lost work.

Victims are whole allocations (never part of a gang) of strictly lower priority that are preemptible.
Lost work is the GPU-hours each victim ran since its last checkpoint.
"""

from __future__ import annotations

import heapq

from .request import Allocation, Request
from .state import ClusterState, FleetState


class _Freed:
    """Groups of `g` that fit if some allocations were evicted, kept up to date one victim at a time."""

    def __init__(self, cs: ClusterState, g: int):
        self.dom = cs.domains
        self.g = g
        self.extra: dict[int, int] = {}
        self.groups = self.dom.count_groups(g, 1 << 62)

    def _delta(self, a: Allocation, sign: int) -> int:
        dom, g, extra, change = self.dom, self.g, self.extra, 0
        for d, used in a.parts:
            if dom.is_live(d):
                have = dom.free[d] + extra.get(d, 0)
                change += (have + sign * used) // g - have // g
        return change

    def add(self, a: Allocation) -> None:
        self.groups += self._delta(a, +1)
        for d, used in a.parts:
            self.extra[d] = self.extra.get(d, 0) + used

    def would_remain(self, a: Allocation) -> int:
        return self.groups + self._delta(a, -1)

    def remove(self, a: Allocation) -> None:
        self.groups += self._delta(a, -1)
        for d, used in a.parts:
            self.extra[d] -= used


def _plan_for(cs: ClusterState, req: Request, fleet: FleetState) -> list[Allocation] | None:
    # Cheap bound first: even evicting every lower-priority preemptible GPU must leave room.
    prio = fleet.preemptible_prio[cs.index]
    evictable = sum(g for p, g in prio.items() if p < req.priority)
    if evictable == 0 or cs.domains.free_total + evictable < req.gpus:
        return None
    now = fleet.now
    pool = [((a.lost_gpu_hours(now), -a.gpus, a.request.id), a) for a in fleet.cluster_allocs[cs.index].values()
            if a.request.preemptible and a.request.priority < req.priority]
    heapq.heapify(pool)  # least lost work first, without sorting the whole pool
    freed = _Freed(cs, req.group)
    chosen: list[Allocation] = []
    while pool and freed.groups < req.groups:
        a = heapq.heappop(pool)[1]
        chosen.append(a)
        freed.add(a)
    if freed.groups < req.groups:
        return None
    # Drop victims that turned out unnecessary, most lost work first.
    for a in sorted(chosen, key=lambda a: -a.lost_gpu_hours(now)):
        if len(chosen) > 1 and freed.would_remain(a) >= req.groups:
            freed.remove(a)
            chosen.remove(a)
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
