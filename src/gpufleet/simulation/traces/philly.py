"""Microsoft Philly job list as published with the Pollux (OSDI'21) artifact.

CSV `timestamp,duration,num_gpus,gpu_time,cluster`: submit time `YYYY-MM-DD HH:MM:SS` (rows are not sorted),
run time in seconds, GPUs, GPU-seconds (= duration x num_gpus, not read) and the Philly virtual cluster (VC).
"""

from __future__ import annotations

import re
from datetime import datetime

from .base import ImportReport, JobTrace, TraceError, TraceJob
from .generic_csv import epoch_s, read_table, shifted_and_sorted, to_float, to_int, wall_clock

REQUIRED = ("timestamp", "duration", "num_gpus", "cluster")
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def parse_stamp(text: str, path: str, line: int) -> float:
    """Seconds of a `YYYY-MM-DD HH:MM:SS` wall-clock time (regex + fromisoformat: strptime is 40x slower)."""
    try:
        if _STAMP.fullmatch(text):
            return epoch_s(datetime.fromisoformat(text))
    except ValueError:
        pass
    raise TraceError(f"{path}:{line}: column timestamp: expected YYYY-MM-DD HH:MM:SS, found {text!r}")


def load_philly(path: str) -> JobTrace:
    """One job per row; rows with no GPUs or no run time are skipped and counted."""
    report = ImportReport(file=path, format="philly")
    columns, rows = read_table(path, REQUIRED)
    jobs: list[TraceJob] = []
    for index, (line, fields) in enumerate(rows):
        report.rows_read += 1
        submit = parse_stamp(fields[columns["timestamp"]], path, line)
        duration = to_float(fields[columns["duration"]], path, line, "duration")
        gpus = to_int(fields[columns["num_gpus"]], path, line, "num_gpus")
        if gpus <= 0:
            report.skip("zero GPUs (CPU-only)")
        elif duration <= 0:
            report.skip("duration <= 0")
        else:
            jobs.append(TraceJob(name=f"philly-{index}", submit_s=submit, gpus=gpus, duration_s=duration,
                                 queue=fields[columns["cluster"]].strip()))
    report.rows_used = len(jobs)
    start = min((j.submit_s for j in jobs), default=0.0)
    report.notes += [
        "timestamps are wall-clock times without a zone; only their differences are used",
        f"submit_s = timestamp minus the earliest used one ({wall_clock(start)}); rows sorted by submit",
        "queue = the Philly virtual cluster (cluster column); group 0 lets the mapping pick the NVLink split",
        "gpu_time is not read (it is duration x num_gpus)",
    ]
    return JobTrace(shifted_and_sorted(jobs), report)
