"""A plan as the online engine reads it: per period, the GPUs the planner gives each workload (and each
workload class) on each cluster, and what one more GPU-hour of each cluster's capacity is worth.

The planner (`planning/guidance.py`) writes it; the `plan` and `shadow` scorers read it. Plain tuples in
the fleet's cluster order, so a decision reads two lists and no plan object. Pure data, no solver here.
`gangs` names the gang workloads the plan places and `held` the whole runs of them it expects on each cluster:
the `reservation` filter keeps room for those runs. `classes` names the class of each workload a request names
(a service in one region, a job's workload): the `cap_reservation` filter holds room under the caps for them.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import NamedTuple

Grid = tuple[tuple[float, ...], ...]   # [period][cluster]


class Gang(NamedTuple):
    """A gang workload the plan runs: the room one run needs is held for it from `hold_from_s` on."""
    gpus: int              # GPUs one run holds
    group: int             # in tensor-parallel groups of this many GPUs inside one NVLink domain
    priority: int          # work of higher priority is not kept out of the room
    hold_from_s: float     # when holding starts (a lead before the workload's first run)


@dataclass(frozen=True)
class Guide:
    bounds_s: tuple[float, ...]          # P + 1 period bounds (seconds); period i is [bounds[i], bounds[i + 1])
    clusters: tuple[str, ...]            # the clusters the grids' columns name
    workloads: dict[str, Grid]           # workload -> average GPUs planned per period and cluster
    kinds: dict[str, Grid]               # workload class -> the same, summed over its workloads
    value: Grid                          # USD one more GPU-hour of capacity would save (capacity shadow price)
    made_at_s: float = 0.0               # the time it was planned at
    label: str = ""                      # what made it (shown in explanations and reports)
    gangs: dict[str, Gang] = field(default_factory=dict)  # the gang workloads the plan runs
    held: dict[str, Grid] = field(default_factory=dict)   # gang workload -> GPUs of whole runs to hold
    classes: dict[str, str] = field(default_factory=dict)  # workload a request names -> its class (`cap_reservation`)

    @property
    def periods(self) -> int:
        return len(self.bounds_s) - 1

    def period(self, t: float) -> int:
        """The period holding `t`, clamped to the plan's first and last."""
        return min(max(bisect_right(self.bounds_s, t) - 1, 0), self.periods - 1)

    def reorder(self, names: list[str]) -> Guide:
        """The same guide with its columns in the order of `names` (a cluster it does not know: 0)."""
        if tuple(names) == self.clusters:
            return self
        col = {c: i for i, c in enumerate(self.clusters)}

        def take(grid: Grid) -> Grid:
            return tuple(tuple(row[col[n]] if n in col else 0.0 for n in names) for row in grid)

        return Guide(self.bounds_s, tuple(names), {w: take(g) for w, g in self.workloads.items()},
                     {k: take(g) for k, g in self.kinds.items()}, take(self.value), self.made_at_s, self.label,
                     self.gangs, {w: take(h) for w, h in self.held.items()}, self.classes)

