"""Mooncake (Kimi, FAST'25) request traces as replica demand.

JSON lines `{"timestamp": ms from start, "input_length": tokens, "output_length": tokens, "hash_ids": [...]}`.
Only the first three fields are read (hash_ids, the KV-prefix blocks, do not change the token count).
"""

from __future__ import annotations

import json
import math

from .base import DemandTrace, ImportReport, TraceError
from .demand import TOKENS_NOTE, check_options, demand_series
from .generic_csv import read_lines

FIELDS = ("timestamp", "input_length", "output_length")


def _number(record: dict, key: str, path: str, line: int, whole: bool) -> float:
    if key not in record:
        raise TraceError(f"{path}:{line}: expected field {key!r}, found fields {', '.join(record) or 'none'}")
    value = record[key]
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not 0 <= value < math.inf:
        what = "a whole number >= 0" if whole else "a number >= 0"
        raise TraceError(f"{path}:{line}: field {key}: expected {what}, found {value!r}")
    return value


def read_requests(path: str) -> list[tuple[float, int]]:
    """(ms from start, input + output tokens) per non-blank line."""
    events: list[tuple[float, int]] = []
    for line, text in read_lines(path):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise TraceError(f"{path}:{line}: expected a JSON object, found invalid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise TraceError(f"{path}:{line}: expected a JSON object, found {type(record).__name__}")
        ms = _number(record, "timestamp", path, line, whole=False)
        tokens = (int(_number(record, "input_length", path, line, whole=True))
                  + int(_number(record, "output_length", path, line, whole=True)))
        events.append((float(ms), tokens))
    return events


def load_mooncake(path: str, window_s: float = 60.0,
                  tokens_per_s_per_replica: float = 10_000.0) -> DemandTrace:
    """Replicas per window needed to serve the trace's input + output tokens."""
    check_options(path, window_s, tokens_per_s_per_replica)
    report = ImportReport(file=path, format="mooncake")
    events = read_requests(path)
    report.rows_read = report.rows_used = len(events)
    start = min((t for t, _ in events), default=0.0)
    report.notes += [
        TOKENS_NOTE.format(tps=tokens_per_s_per_replica),
        f"windows of {window_s:g} s from the first request; timestamp is milliseconds",
        "a window's tokens = input_length + output_length of its requests",
        "hash_ids (KV-prefix reuse) are ignored",
    ]
    points = demand_series([((t - start) / 1000.0, n) for t, n in events], window_s, tokens_per_s_per_replica)
    return DemandTrace(points, report, window_s)
