"""Free GPUs of one cluster's NVLink domains, indexed for best-fit in O(1).

Domains are grouped in buckets by how many GPUs they have free; a bitmask says which buckets are
non-empty, so "the fullest domain that still fits a group of g" is one shift and one bit trick.
Hand-written because no library offers best-fit over bucketed integer sets at this speed.
"""

from __future__ import annotations


class Domains:
    __slots__ = ("usable", "free", "buckets", "mask", "active", "down", "free_total", "_live")

    def __init__(self, count: int, usable: int, active: int):
        self.usable = usable
        self.free = [usable] * count          # free GPUs per domain (also for down or inactive ones)
        self.buckets: list[set[int]] = [set() for _ in range(usable + 1)]
        self.mask = 0                          # bit k set <=> buckets[k] is non-empty
        self.active = 0                        # domains [0, active) exist now (the ramp)
        self.down: set[int] = set()
        self.free_total = 0                    # free GPUs in live (active, healthy) domains
        self._live = 0
        self.set_active(active)

    # -- membership of live domains in buckets ------------------------------------------------------
    def _add(self, d: int) -> None:
        k = self.free[d]
        self.buckets[k].add(d)
        self.mask |= 1 << k
        self.free_total += k
        self._live += 1

    def _remove(self, d: int) -> None:
        k = self.free[d]
        b = self.buckets[k]
        b.discard(d)
        if not b:
            self.mask &= ~(1 << k)
        self.free_total -= k
        self._live -= 1

    def is_live(self, d: int) -> bool:
        return d < self.active and d not in self.down

    @property
    def live_domains(self) -> int:
        return self._live

    def set_active(self, n: int) -> None:
        n = max(0, min(n, len(self.free)))
        for d in range(self.active, n):
            if d not in self.down:
                self._add(d)
        for d in range(n, self.active):
            if d not in self.down:
                self._remove(d)
        self.active = n

    def mark_down(self, d: int) -> None:
        if d in self.down:
            return
        if d < self.active:
            self._remove(d)
        self.down.add(d)

    def mark_up(self, d: int) -> None:
        if d not in self.down:
            return
        self.down.discard(d)
        if d < self.active:
            self._add(d)

    # -- queries ------------------------------------------------------------------------------------
    def fits(self, groups: int, g: int) -> bool:
        return (self.mask >> g) != 0 if groups == 1 else self.count_groups(g, groups) >= groups

    def count_groups(self, g: int, enough: int) -> int:
        """How many groups of g fit in live domains (stops counting once `enough` is reached)."""
        n, m, k = 0, self.mask >> g, g
        while m:
            if m & 1:
                n += len(self.buckets[k]) * (k // g)
                if n >= enough:
                    return n
            m >>= 1
            k += 1
        return n

    def best_fit_level(self, g: int) -> int:
        """Free GPUs of the fullest live domain that still fits g (-1 if none)."""
        m = self.mask >> g
        return -1 if m == 0 else g + (m & -m).bit_length() - 1

    # -- changes ------------------------------------------------------------------------------------
    def take(self, groups: int, g: int) -> tuple[tuple[int, int], ...]:
        """Allocate `groups` groups of g GPUs, fullest domains first; caller checked they fit."""
        parts = []
        free, buckets = self.free, self.buckets
        while groups:
            m = self.mask >> g
            k = g + (m & -m).bit_length() - 1
            b = buckets[k]
            d = b.pop()
            if not b:
                self.mask &= ~(1 << k)
            n = min(groups, k // g)
            used = n * g
            left = k - used
            free[d] = left
            buckets[left].add(d)
            self.mask |= 1 << left
            self.free_total -= used
            parts.append((d, used))
            groups -= n
        return tuple(parts)

    def claim(self, parts: tuple[tuple[int, int], ...]) -> bool:
        """Allocate exactly these (domain, GPUs) parts, as recorded earlier; False (and no change) if any
        domain no longer exists or has too few GPUs free."""
        for d, used in parts:
            if not (0 <= d < len(self.free)) or not self.is_live(d) or self.free[d] < used or used < 1:
                return False
        for d, used in parts:
            self._remove(d)
            self.free[d] -= used
            self._add(d)
        return True

    def give(self, parts: tuple[tuple[int, int], ...]) -> None:
        for d, used in parts:
            live = self.is_live(d)
            if live:
                self._remove(d)
            self.free[d] += used
            if live:
                self._add(d)
