"""Queue disciplines: in which order waiting work is tried.

Waiting jobs are kept in partitions, one per set of eligible clusters (as each Philly virtual cluster or
Kueue ClusterQueue has its own queue): a job that cannot fit only holds back jobs competing for the same
clusters.

- `fifo`: arrival order; the head blocks its partition until it fits.
- `priority`: highest priority first, then arrival; the head blocks.
- `sjf`: shortest known duration first; a job that does not fit is skipped (as trace studies do).
- `backfill`: FIFO with EASY backfill: when the head does not fit it gets a reservation at the earliest
  time enough GPUs free up (its shadow time); a later job may start now only if it ends by then, or if it
  uses only GPUs the head will not need at that time.
"""

from __future__ import annotations

import bisect
from typing import Callable

from .jobs import SimJob

QUEUES = ("fifo", "priority", "sjf", "backfill")


def _fifo(j: SimJob) -> tuple:
    return (j.submit_s, j.seq)


def _priority(j: SimJob) -> tuple:
    return (-j.request.priority, j.submit_s, j.seq)


def _sjf(j: SimJob) -> tuple:
    return (j.estimated_run_s(), j.submit_s, j.seq)


ORDER: dict[str, Callable[[SimJob], tuple]] = {"fifo": _fifo, "priority": _priority, "sjf": _sjf, "backfill": _fifo}
BLOCKING = {"fifo": True, "priority": True, "sjf": False, "backfill": True}


class Partition:
    """Waiting jobs that share one set of eligible clusters, kept sorted by the discipline's key."""

    __slots__ = ("key", "clusters", "entries", "dirty")

    def __init__(self, key: tuple, clusters: frozenset[int]):
        self.key = key
        self.clusters = clusters            # indices of the clusters these jobs may use
        self.entries: list[tuple] = []      # (order key..., job) sorted
        self.dirty = True                   # new arrivals since the last pass

    def add(self, job: SimJob, order: Callable[[SimJob], tuple]) -> None:
        bisect.insort(self.entries, (*order(job), job))
        self.dirty = True

    def remove(self, job: SimJob) -> bool:
        for i, e in enumerate(self.entries):
            if e[-1] is job:
                del self.entries[i]
                return True
        return False

    def __len__(self) -> int:
        return len(self.entries)
