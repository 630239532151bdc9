"""Azure LLM inference trace 2023 (Splitwise, ISCA'24) from the Azure Public Dataset, as replica demand.

CSV `TIMESTAMP,ContextTokens,GeneratedTokens`, one request per row. TIMESTAMP is a wall-clock time with 7
fractional digits (truncated to microseconds here). Tokens per window become replicas (see demand.py).
"""

from __future__ import annotations

from datetime import datetime

from .base import DemandTrace, ImportReport, TraceError
from .demand import TOKENS_NOTE, check_options, demand_series
from .generic_csv import epoch_s, read_table, to_int, wall_clock

__all__ = ["load_azure_llm", "demand_series", "parse_timestamp"]

REQUIRED = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def parse_timestamp(text: str, path: str, line: int) -> float:
    """Seconds of `YYYY-MM-DD HH:MM:SS[.fraction]`, the fraction truncated to 6 digits."""
    stamp, dot, fraction = text.strip().partition(".")
    try:
        if dot:
            return epoch_s(datetime.strptime(f"{stamp}.{fraction[:6]}", "%Y-%m-%d %H:%M:%S.%f"))
        return epoch_s(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        raise TraceError(f"{path}:{line}: column TIMESTAMP: expected YYYY-MM-DD HH:MM:SS[.fraction], "
                         f"found {text!r}") from None


def _tokens(text: str, path: str, line: int, column: str) -> int:
    n = to_int(text, path, line, column)
    if n < 0:
        raise TraceError(f"{path}:{line}: column {column}: expected 0 or more tokens, found {n}")
    return n


def load_azure_llm(path: str, window_s: float = 60.0,
                   tokens_per_s_per_replica: float = 10_000.0) -> DemandTrace:
    """Replicas per window needed to serve the trace's context + generated tokens."""
    check_options(path, window_s, tokens_per_s_per_replica)
    report = ImportReport(file=path, format="azure-llm")
    columns, rows = read_table(path, REQUIRED)
    events: list[tuple[float, int]] = []
    for line, fields in rows:
        report.rows_read += 1
        when = parse_timestamp(fields[columns["TIMESTAMP"]], path, line)
        tokens = (_tokens(fields[columns["ContextTokens"]], path, line, "ContextTokens")
                  + _tokens(fields[columns["GeneratedTokens"]], path, line, "GeneratedTokens"))
        events.append((when, tokens))
    report.rows_used = len(events)
    start = min((t for t, _ in events), default=0.0)
    report.notes += [
        TOKENS_NOTE.format(tps=tokens_per_s_per_replica),
        f"windows of {window_s:g} s from the first request ({wall_clock(start)}, fraction dropped here)",
        "TIMESTAMP fractions truncated to microseconds; a request counts in the window it arrives in",
        "a window's tokens = ContextTokens + GeneratedTokens of its requests",
    ]
    points = demand_series([(t - start, n) for t, n in events], window_s, tokens_per_s_per_replica)
    return DemandTrace(points, report, window_s)
