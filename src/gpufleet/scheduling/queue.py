"""Queue disciplines: in which order waiting work is tried, and when work that does not fit stops the rest.

Waiting work is kept in partitions, one per set of eligible clusters (as each Philly virtual cluster or
Kueue ClusterQueue has its own queue): work that cannot fit only holds back work competing for the same
clusters.

- `priority` (the default, live and simulated): highest priority first, then arrival; best effort: work
  that does not fit is passed over and smaller or different work behind it may start.
- `fifo`: arrival order; the head blocks its partition until it fits (strict, as Philly's scheduler was).
- `sjf`: shortest known duration first; work that does not fit is passed over (as trace studies do).
- `backfill`: FIFO with EASY backfill: when the head does not fit it gets a reservation at the earliest
  time enough GPUs free up (its shadow time); later work may start now only if it ends by then, or if it
  uses only GPUs the head will not need at that time.

One skip rule for all but backfill: within one pass, once a piece of work failed to place, work alike in
everything the engine reads (request shapes, team, priority, preemptibility, `min_providers`; its
`blocker`) is not tried again.
"""

from __future__ import annotations

import bisect
from typing import Callable

from .work import Work

QUEUES = ("priority", "fifo", "sjf", "backfill")
DEFAULT_QUEUE = "priority"


def _fifo(j: Work) -> tuple:
    return (j.submit_s, j.seq)


def _priority(j: Work) -> tuple:
    return (-j.priority, j.submit_s, j.seq)


def _sjf(j: Work) -> tuple:
    return (j.estimated_run_s(), j.submit_s, j.seq)


ORDER: dict[str, Callable[[Work], tuple]] = {"fifo": _fifo, "priority": _priority, "sjf": _sjf, "backfill": _fifo}
BLOCKING = {"fifo": True, "priority": False, "sjf": False, "backfill": True}


class Partition:
    """Waiting work that shares one set of eligible clusters, kept sorted by the discipline's key."""

    __slots__ = ("key", "clusters", "entries", "dirty", "blockers")

    def __init__(self, key: tuple, clusters: frozenset[int]):
        self.key = key
        self.clusters = clusters            # indices of the clusters this work may use
        self.entries: list[tuple] = []      # (order key..., work) sorted
        self.dirty = True                   # new arrivals since the last pass
        self.blockers: dict[tuple, int] = {}  # each `blocker` among the entries -> how many entries have it

    def add(self, job: Work, order: Callable[[Work], tuple]) -> None:
        bisect.insort(self.entries, (*order(job), job))
        self.blockers[job.blocker] = self.blockers.get(job.blocker, 0) + 1
        self.dirty = True

    def remove(self, job: Work) -> bool:
        for i, e in enumerate(self.entries):
            if e[-1] is job:
                del self.entries[i]
                self._forget(job.blocker)
                return True
        return False

    def keep(self, entries: list[tuple]) -> None:
        """Keep only these of the entries (in order)."""
        self.entries = entries
        self.blockers = {}
        for e in entries:
            b = e[-1].blocker
            self.blockers[b] = self.blockers.get(b, 0) + 1

    def _forget(self, blocker: tuple) -> None:
        n = self.blockers[blocker] - 1
        if n:
            self.blockers[blocker] = n
        else:
            del self.blockers[blocker]

    def __len__(self) -> int:
        return len(self.entries)
