"""Inference demand from request arrivals: tokens per time window turned into a step series of replicas."""

from __future__ import annotations

import math

from .base import DemandPoint, TraceError

TOKENS_NOTE = ("{tps:,.0f} tokens/s per replica: an 8-GPU H100 replica of a ~70B model, prefill and decode "
               "together; change with tokens_per_s_per_replica")


def check_options(path: str, window_s: float, tokens_per_s_per_replica: float) -> None:
    """TraceError unless both demand options are positive numbers."""
    for name, value in (("window_s", window_s), ("tokens_per_s_per_replica", tokens_per_s_per_replica)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                or not math.isfinite(value):
            raise TraceError(f"{path}: option {name}: expected a positive number, found {value!r}")


def demand_series(events: list[tuple[float, int]], window_s: float,
                  tokens_per_s_per_replica: float) -> list[DemandPoint]:
    """Replicas needed per window of `window_s` seconds, as a step series starting at t=0.

    `events` are (seconds from the trace start, >= 0; tokens of one request). A window needs
    ceil(tokens / (window_s * tokens_per_s_per_replica)) replicas, at least 1 while it holds any request,
    0 when empty. A point is emitted only where the value changes; the series ends with 0 replicas at the
    end of the last busy window.
    """
    if not events:
        return []
    per_window: dict[int, int] = {}
    for t_s, tokens in events:
        w = int(t_s // window_s)
        per_window[w] = per_window.get(w, 0) + tokens
    capacity = window_s * tokens_per_s_per_replica
    points: list[DemandPoint] = []

    def step(w: int, replicas: int) -> None:
        if not points or points[-1].replicas != replicas:
            points.append(DemandPoint(t_s=w * window_s, replicas=replicas))

    previous = -1
    for w in sorted(per_window):
        if w > previous + 1:
            step(previous + 1, 0)  # empty windows in between (or before the first busy one)
        step(w, max(1, math.ceil(per_window[w] / capacity)))
        previous = w
    step(previous + 1, 0)  # demand drops to 0 after the last busy window
    return points
