"""Inference services that follow demand: how many replicas one region needs, given where they run.

Demand is counted in reference replicas (replicas of speed 1.0). A replica holds its whole
`gpus_per_replica` GPUs wherever it runs, and serves `speed` reference replicas, the speed of the GPU
type it landed on: demand for 2,500 on GB200 at 2.5 needs 1,000 replicas (8,000 GPUs), on H100 2,500.
The planner counts the same way (demand in reference GPU-hours, a GPU-hour on type `s` delivers `s` of
them), so the planned and the simulated GPU-hours of a service agree.

Where a queued replica will land is not known, so a region asks for as many replicas as the demand left
needs at the speed the last one got (at first, the fastest type allowed); once they run, it asks for more
(they landed slower) or lets the surplus go (faster). `ServiceRegion.reconcile` returns the difference;
the driver queues and stops what it says. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .work import QUEUED, RUNNING, Work

EPS = 1e-9


@dataclass
class Change:
    """What a region needs now: this many more replicas queued, and these replicas stopped."""

    add: int = 0
    stop: list[Work] = field(default_factory=list)


class ServiceRegion:
    """The replicas of one service in one region (or area), sized to its demand."""

    __slots__ = ("want", "live", "made", "fastest", "last_speed")

    def __init__(self, speeds: dict[str, float]):
        self.want = 0.0                       # reference replicas asked now
        self.live: list[Work] = []            # queued and running, oldest first
        self.made = 0                         # replicas ever made (for unique ids)
        self.fastest = max(speeds.values(), default=1.0) or 1.0
        self.last_speed: float | None = None  # speed the latest started replica got

    def capacity(self) -> float:
        """Reference replicas the running ones serve."""
        return sum(w.speed for w in self.live if w.state == RUNNING)

    def served(self) -> float:
        return min(self.want, self.capacity())

    def started(self, w: Work) -> None:
        self.last_speed = w.speed

    def reconcile(self) -> Change:
        """Replicas to add or stop so that the running ones serve the demand with no replica to spare,
        counting each queued one at the speed the last started replica got."""
        out = Change()
        cap = self.capacity()
        for w in reversed(self.live):         # scale down: the newest running replicas no longer needed
            if w.state == RUNNING and cap - w.speed >= self.want - EPS:
                cap -= w.speed
                out.stop.append(w)
        queued = [w for w in self.live if w.state == QUEUED]
        left = self.want - cap
        speed = self.last_speed or self.fastest
        need = math.ceil(left / speed - EPS) if left > EPS else 0
        if len(queued) > need:
            out.stop.extend(reversed(queued[need:]))   # the newest queued first
        else:
            out.add = need - len(queued)
        return out

    def forget(self, stopped: list[Work]) -> None:
        gone = {id(w) for w in stopped}
        self.live = [w for w in self.live if id(w) not in gone]
