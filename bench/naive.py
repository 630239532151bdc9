"""A deliberately naive domain index: scans every domain on every query (the baseline for bench/placement.py)."""

from __future__ import annotations


class ScanDomains:
    """Same interface as gpufleet.placement.domains.Domains; best fit by scanning the list each time."""

    def __init__(self, count: int, usable: int, active: int):
        self.usable = usable
        self.free = [usable] * count
        self.active = 0
        self.down: set[int] = set()
        self.set_active(active)

    def is_live(self, d):
        return d < self.active and d not in self.down

    @property
    def live_domains(self):
        return sum(1 for d in range(self.active) if d not in self.down)

    @property
    def free_total(self):
        return sum(self.free[d] for d in range(self.active) if d not in self.down)

    @property
    def buckets(self):
        b = [set() for _ in range(self.usable + 1)]
        for d in range(self.active):
            if d not in self.down:
                b[self.free[d]].add(d)
        return b

    @property
    def mask(self):
        m = 0
        for d in range(self.active):
            if d not in self.down:
                m |= 1 << self.free[d]
        return m

    def set_active(self, n):
        self.active = max(0, min(n, len(self.free)))

    def mark_down(self, d):
        self.down.add(d)

    def mark_up(self, d):
        self.down.discard(d)

    def fits(self, groups, g):
        return self.count_groups(g, groups) >= groups

    def count_groups(self, g, enough):
        return sum(self.free[d] // g for d in range(self.active) if d not in self.down)

    def best_fit_level(self, g):
        best = -1
        for d in range(self.active):
            f = self.free[d]
            if f >= g and d not in self.down and (best < 0 or f < best):
                best = f
        return best

    def take(self, groups, g):
        parts = []
        while groups:
            best, best_d = None, -1
            for d in range(self.active):
                f = self.free[d]
                if f >= g and d not in self.down and (best is None or f < best):
                    best, best_d = f, d
            n = min(groups, best // g)
            self.free[best_d] -= n * g
            parts.append((best_d, n * g))
            groups -= n
        return tuple(parts)

    def give(self, parts):
        for d, used in parts:
            self.free[d] += used
