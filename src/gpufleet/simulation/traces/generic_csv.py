"""The generic job CSV users bring their own traces in, and the careful CSV reading every CSV importer shares.

Generic format (see docs/traces.md): required `submit_time` (seconds, or an ISO 8601 date-time), `gpus`
(whole number >= 1) and `duration_s` (> 0); optional `name`, `gpu_type`, `tp` (-> group), `priority`,
`queue`, `kind` (batch | training | inference). Other columns are ignored with a note.

The shared readers turn every structural problem (not UTF-8, empty, missing columns, wrong number of fields,
a non-numeric value in a numeric column) into a `TraceError` naming the file and the 1-based line.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime, timezone
from typing import Sequence

from .base import ImportReport, JobTrace, TraceError, TraceJob

Row = tuple[int, list[str]]  # (1-based line number, fields)

REQUIRED = ("submit_time", "gpus", "duration_s")
OPTIONAL = ("name", "gpu_type", "tp", "priority", "queue", "kind")
KINDS = ("batch", "training", "inference")


# ---- shared reading helpers ------------------------------------------------------------------------------

def read_text(path: str) -> str:
    """The whole file as text; unreadable or non-UTF-8 files raise TraceError (naming the bad line)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise TraceError(f"{path}: cannot be read: {getattr(e, 'strerror', None) or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise TraceError(f"{path}:{line}: expected UTF-8 text, found byte 0x{data[e.start]:02x}") from None


def read_lines(path: str) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers (blank lines, e.g. a trailing one, are not rows)."""
    lines = read_text(path).split("\n")
    return [(i, s.rstrip("\r")) for i, s in enumerate(lines, start=1) if s.strip()]


def check_columns(path: str, columns: dict[str, int], required: Sequence[str]) -> None:
    """TraceError on line 1 when a required column is missing from the header."""
    missing = [c for c in required if c not in columns]
    if missing:
        raise TraceError(f"{path}:1: expected columns {', '.join(required)}; missing {', '.join(missing)} "
                         f"(found {', '.join(columns)})")


def read_table(path: str, required: Sequence[str]) -> tuple[dict[str, int], list[Row]]:
    """Column positions from the header and the non-blank data rows, each checked for its number of fields."""
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise TraceError(f"{path}:1: expected a header with columns {', '.join(required) or 'named'}, "
                             "found an empty file")
        names = [h.strip() for h in header]
        columns = {n: i for i, n in enumerate(names)}
        twice = sorted({n for n in names if n and names.count(n) > 1})
        if twice:
            raise TraceError(f"{path}:1: expected each column once, found {', '.join(twice)} more than once")
        check_columns(path, columns, required)
        rows: list[Row] = []
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != len(header):
                raise TraceError(f"{path}:{reader.line_num}: expected {len(header)} fields, "
                                 f"found {len(fields)}")
            rows.append((reader.line_num, fields))
    except csv.Error as e:
        raise TraceError(f"{path}:{reader.line_num}: not valid CSV: {e}") from None
    return columns, rows


def to_float(text: str, path: str, line: int, column: str) -> float:
    """A finite number, or TraceError naming the file, line and column."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise TraceError(f"{path}:{line}: column {column}: expected a number, found {text!r}")
    return value


def to_int(text: str, path: str, line: int, column: str) -> int:
    """A whole number, or TraceError naming the file, line and column."""
    try:
        return int(text)
    except ValueError:
        raise TraceError(f"{path}:{line}: column {column}: expected a whole number, found {text!r}") from None


def epoch_s(when: datetime) -> float:
    """Seconds since 1970 for a date-time; naive ones are read as UTC (only differences are used)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def wall_clock(seconds: float) -> str:
    """`YYYY-MM-DD HH:MM:SS` of seconds from `epoch_s` (for notes saying where t=0 lies)."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def shifted_and_sorted(jobs: list[TraceJob]) -> list[TraceJob]:
    """Jobs moved so the first submit is 0, sorted by (submit_s, original order)."""
    start = min((j.submit_s for j in jobs), default=0.0)
    for j in jobs:
        j.submit_s -= start
    return sorted(jobs, key=lambda j: j.submit_s)  # sorted() is stable: ties keep row order


# ---- the generic format ----------------------------------------------------------------------------------

def _submit(text: str, path: str, line: int) -> tuple[bool, float]:
    """(is_iso, seconds) of a submit_time cell."""
    try:
        return False, to_float(text, path, line, "submit_time")
    except TraceError:
        pass
    try:
        return True, epoch_s(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise TraceError(f"{path}:{line}: column submit_time: expected seconds or an ISO 8601 date-time, "
                         f"found {text!r}") from None


def _job(cell: dict[str, str], index: int, submit_s: float, path: str, line: int) -> TraceJob:
    gpus = to_int(cell["gpus"], path, line, "gpus")
    tp = to_int(cell.get("tp") or "0", path, line, "tp")
    if not 0 <= tp <= max(gpus, 0):
        raise TraceError(f"{path}:{line}: column tp: expected 0..gpus ({gpus}), found {tp}")
    kind = (cell.get("kind") or "batch").strip()
    if kind not in KINDS:
        raise TraceError(f"{path}:{line}: column kind: expected one of {', '.join(KINDS)}, found {kind!r}")
    return TraceJob(name=(cell.get("name") or "").strip() or f"csv-{index}", submit_s=submit_s, gpus=gpus,
                    duration_s=to_float(cell["duration_s"], path, line, "duration_s"), group=tp,
                    gpu_type=(cell.get("gpu_type") or "").strip() or None,
                    queue=(cell.get("queue") or "").strip() or None,
                    priority=to_int(cell.get("priority") or "0", path, line, "priority"), kind=kind)


def load_generic_csv(path: str) -> JobTrace:
    """Jobs from a generic CSV (one row per job); see the module docstring and docs/traces.md."""
    report = ImportReport(file=path, format="csv")
    columns, rows = read_table(path, REQUIRED)
    extra = sorted(set(columns) - set(REQUIRED) - set(OPTIONAL))
    if extra:
        report.notes.append(f"ignored columns: {', '.join(extra)}")
    known = [c for c in (*REQUIRED, *OPTIONAL) if c in columns]
    jobs: list[TraceJob] = []
    first_iso: tuple[bool, int] | None = None
    names: dict[str, int] = {}
    for index, (line, fields) in enumerate(rows):
        report.rows_read += 1
        cell = {c: fields[columns[c]] for c in known}
        iso, submit = _submit(cell["submit_time"], path, line)
        if first_iso is None:
            first_iso = (iso, line)
        elif iso != first_iso[0]:
            expected = "an ISO date-time" if first_iso[0] else "seconds"
            raise TraceError(f"{path}:{line}: column submit_time: expected {expected} "
                             f"like line {first_iso[1]}, found {cell['submit_time']!r} (mixed formats)")
        job = _job(cell, index, submit, path, line)
        if job.name in names:
            raise TraceError(f"{path}:{line}: column name: expected unique names, found {job.name!r} "
                             f"again (first on line {names[job.name]})")
        names[job.name] = line
        if job.gpus < 1:
            report.skip("gpus < 1 (CPU-only)")
        elif job.duration_s <= 0:
            report.skip("duration_s <= 0")
        else:
            jobs.append(job)
    report.rows_used = len(jobs)
    if first_iso and first_iso[0]:
        report.notes.append("submit_time read as ISO 8601; date-times without a zone are taken as UTC")
    report.notes.append("submit_s = submit_time minus the earliest used submit_time")
    return JobTrace(shifted_and_sorted(jobs), report)
