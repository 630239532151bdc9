"""Planning periods (calendar months, or groups of them) and step functions integrated over them.

Everything here is arrays: a period is a half-open day range [start, end); a ramp or a demand series is a step
function of the day, and what the planner needs is its integral over each period in GPU-hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Sequence

import numpy as np

HOURS_PER_DAY = 24.0


def add_months(d: date, n: int) -> date:
    """The same day n months later (clipped to the month's last day)."""
    y, m = divmod(d.month - 1 + n, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise ValueError(f"cannot shift {d} by {n} months")


@dataclass(frozen=True)
class Periods:
    """P consecutive periods: `bounds` has P + 1 dates, period i is [bounds[i], bounds[i + 1])."""

    bounds: tuple[date, ...]
    months: tuple[int, ...]          # calendar months each period spans (1 for monthly plans)

    @property
    def n(self) -> int:
        return len(self.bounds) - 1

    @property
    def start(self) -> date:
        return self.bounds[0]

    @property
    def end(self) -> date:
        return self.bounds[-1]

    @property
    def ordinals(self) -> np.ndarray:
        return np.array([d.toordinal() for d in self.bounds], dtype=np.int64)

    @property
    def days(self) -> np.ndarray:
        return np.diff(self.ordinals).astype(float)

    @property
    def hours(self) -> np.ndarray:
        return self.days * HOURS_PER_DAY

    @property
    def labels(self) -> list[str]:
        """`YYYY-MM` for a one-month period, `YYYY-MM..YYYY-MM` for longer ones."""
        out = []
        for a, b in zip(self.bounds[:-1], self.bounds[1:]):
            last = b - timedelta(days=1)
            same = (a.year, a.month) == (last.year, last.month)
            out.append(a.strftime("%Y-%m") if same else f"{a:%Y-%m}..{last:%Y-%m}")
        return out

    def midpoints(self) -> np.ndarray:
        """Ordinal day at the middle of each period (used to decide which contract is in force)."""
        o = self.ordinals
        return (o[:-1] + o[1:]) / 2.0


def periods_between(start: date, end: date, months_per_period: int = 1) -> Periods:
    """Periods of `months_per_period` calendar months covering [start, end); the first and last are clipped."""
    if end <= start:
        raise ValueError(f"the plan ends ({end}) on or before it starts ({start})")
    if months_per_period < 1:
        raise ValueError("months per period must be at least 1")
    bounds, months = [start], []
    cursor = date(start.year, start.month, 1)
    while bounds[-1] < end:
        nxt = add_months(cursor, months_per_period)
        bounds.append(min(nxt, end))
        months.append(months_per_period)
        cursor = nxt
    return Periods(tuple(bounds), tuple(months))


def step_integral(step_days: Sequence[int], levels: Sequence[float], bounds: np.ndarray) -> np.ndarray:
    """Day-integral of a step function over each [bounds[i], bounds[i+1]).

    The function is 0 before `step_days[0]` and `levels[j]` from `step_days[j]` on (days as ordinals, increasing).
    """
    if len(step_days) == 0:
        return np.zeros(len(bounds) - 1)
    t = np.asarray(step_days, dtype=float)
    lv = np.asarray(levels, dtype=float)
    cum = np.concatenate(([0.0], np.cumsum(lv[:-1] * np.diff(t))))   # integral up to each step
    b = np.asarray(bounds, dtype=float)
    i = np.searchsorted(t, b, side="right") - 1
    before = i < 0
    ic = np.clip(i, 0, None)
    f = np.where(before, 0.0, cum[ic] + lv[ic] * (b - t[ic]))
    return np.diff(f)


def window_days(a: date, b: date, bounds: np.ndarray) -> np.ndarray:
    """Days of each period inside [a, b)."""
    return step_integral([a.toordinal(), b.toordinal()], [1.0, 0.0], bounds)
