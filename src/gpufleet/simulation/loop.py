"""The discrete-event loop: a heap of [time, seq, callback, arg] entries.

The sequence number keeps same-time events in FIFO order and means entries never compare callbacks;
cancelling clears an entry's callback (lazy cancellation), so nothing is searched. Hand-written rather
than SimPy because generator processes cost several microseconds per event and we need about one.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable

Callback = Callable[[Any], None]


class EventLoop:
    __slots__ = ("now", "_heap", "_seq", "processed")

    def __init__(self, start: float = 0.0):
        self.now = start
        self._heap: list[list] = []
        self._seq = 0
        self.processed = 0

    def at(self, t: float, fn: Callback, arg: Any = None) -> list:
        """Run fn(arg) at time t (not before now). Returns a handle for `cancel`."""
        if t < self.now:
            t = self.now
        entry = [t, self._seq, fn, arg]
        self._seq += 1
        heapq.heappush(self._heap, entry)
        return entry

    @staticmethod
    def cancel(handle: list | None) -> None:
        if handle is not None:
            handle[2] = None

    def peek(self) -> float | None:
        """Time of the next live event, or None."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def step(self) -> bool:
        """Run the next live event. Returns False when none is left."""
        heap = self._heap
        while heap:
            t, _, fn, arg = heapq.heappop(heap)
            if fn is None:
                continue
            self.now = t
            self.processed += 1
            fn(arg)
            return True
        return False

    def run(self, until: float | None = None) -> None:
        """Run events until the heap is empty or the next event is after `until` (then now = until)."""
        heap, pop = self._heap, heapq.heappop
        while heap:
            entry = heap[0]
            if until is not None and entry[0] > until:
                break
            pop(heap)
            fn = entry[2]
            if fn is None:
                continue
            self.now = entry[0]
            self.processed += 1
            fn(entry[3])
        if until is not None and until > self.now:
            self.now = until

    def __len__(self) -> int:
        return len(self._heap)
