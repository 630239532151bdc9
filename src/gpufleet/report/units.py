"""One unit for waits in everything one run's output shows (table, notes, report): the largest wait read
decides it, so a reader compares figures without converting."""

from __future__ import annotations

WAIT_KEYS = ("avg_wait_s", "p50_wait_s", "p95_wait_s", "p99_wait_s")


class WaitUnit:
    def __init__(self, results: list[dict]):
        top = max([r.get(k) or 0.0 for r in results for k in WAIT_KEYS] + [0.0])
        self.name, self.div, self.digits = ("s", 1.0, 0) if top < 120 else ("min", 60.0, 1) if top < 7200 \
            else ("h", 3600.0, 2)

    def value(self, s: float) -> float:
        return s / self.div

    def __call__(self, s: float) -> str:
        """`12.5 min`"""
        return f"{s / self.div:,.{self.digits}f} {self.name}"

    def number(self, s: float) -> str:
        """`12.5` (the unit named once, in a column title)"""
        return f"{s / self.div:,.{self.digits}f}"
