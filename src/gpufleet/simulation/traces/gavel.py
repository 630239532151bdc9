"""Gavel (OSDI'20) `.trace` files: per-VC job lists built from Philly arrivals and GPU counts.

Tab-separated, no header, 7 fields: job_type, command, num_steps_arg, needs_data_dir, total_steps,
arrival_time (s), scale_factor (GPUs). Run time = total_steps / steps-per-second of the job type at that
scale, from Gavel's `simulation_throughputs.json`:
worker type -> "('<job_type>', <scale>)" -> {"null": steps/s}.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from .base import ImportReport, JobTrace, TraceError, TraceJob
from .generic_csv import read_lines, read_text, shifted_and_sorted, to_float, to_int

FIELDS = ("job_type", "command", "num_steps_arg", "needs_data_dir", "total_steps", "arrival_time",
          "scale_factor")
THROUGHPUTS = "simulation_throughputs.json"


def find_throughputs(trace: str) -> str:
    """simulation_throughputs.json beside the trace, else in its parent folder."""
    folder = Path(trace).resolve().parent
    for candidate in (folder / THROUGHPUTS, folder.parent / THROUGHPUTS):
        if candidate.is_file():
            return str(candidate)
    raise TraceError(f"{trace}: expected {THROUGHPUTS} in {folder} or {folder.parent}, found none; "
                     f"pass the throughputs option (the path of Gavel's {THROUGHPUTS})")


def read_throughputs(path: str, worker_type: str) -> dict[str, float]:
    """'(job_type, scale)' -> isolated steps per second on one worker type."""
    try:
        table = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise TraceError(f"{path}:{e.lineno}: expected JSON, found an error: {e.msg}") from None
    if not isinstance(table, dict) or not isinstance(table.get(worker_type), dict):
        known = ", ".join(sorted(table)) if isinstance(table, dict) else "none"
        raise TraceError(f"{path}: expected worker type {worker_type!r} at the top level, found {known}")
    out: dict[str, float] = {}
    for key, entry in table[worker_type].items():
        rate = entry.get("null") if isinstance(entry, dict) else None
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate):
            raise TraceError(f"{path}: {worker_type} -> {key}: expected a number under \"null\", "
                             f"found {rate!r}")
        out[key] = float(rate)
    return out


def load_gavel(path: str, throughputs: str | None = None, worker_type: str = "v100") -> JobTrace:
    """One job per row with GPUs; run time on `worker_type` from Gavel's measured throughputs."""
    report = ImportReport(file=path, format="gavel")
    tput_path = throughputs or find_throughputs(path)
    rates = read_throughputs(tput_path, worker_type)
    stem = Path(path).stem
    jobs: list[TraceJob] = []
    unmeasured: Counter[str] = Counter()
    for index, (line, text) in enumerate(read_lines(path)):
        fields = text.split("\t")
        if len(fields) != len(FIELDS):
            raise TraceError(f"{path}:{line}: expected {len(FIELDS)} tab-separated fields "
                             f"({', '.join(FIELDS)}), found {len(fields)}")
        report.rows_read += 1
        job_type = fields[0]
        to_int(fields[3], path, line, "needs_data_dir")
        steps = to_int(fields[4], path, line, "total_steps")
        arrival = to_float(fields[5], path, line, "arrival_time")
        gpus = to_int(fields[6], path, line, "scale_factor")
        rate = rates.get(str((job_type, gpus)))
        if gpus <= 0:
            report.skip("scale_factor 0 (no GPUs; Gavel skips these)")
        elif rate is None:
            report.skip(f"(job_type, scale_factor) not in the {worker_type} throughputs")
            unmeasured[f"{job_type} on {gpus} GPUs"] += 1
        elif rate <= 0:
            report.skip(f"throughput <= 0 on {worker_type}")
        elif steps <= 0:
            report.skip("total_steps <= 0")
        else:
            jobs.append(TraceJob(name=f"gavel-{stem}-{index}", submit_s=arrival, gpus=gpus,
                                 duration_s=steps / rate, queue=stem))
    report.rows_used = len(jobs)
    report.notes += [
        f"duration_s = total_steps / isolated steps per second on {worker_type} ({tput_path})",
        "submit_s = arrival_time minus the earliest used arrival",
        f"queue = the trace file's stem ({stem}), the Philly VC the arrivals come from",
        "the command, num_steps_arg and needs_data_dir fields are not used",
    ]
    if unmeasured:
        top = [f"{what} ({n})" for what, n in unmeasured.most_common(5)]
        more = f" and {len(unmeasured) - 5} more" if len(unmeasured) > 5 else ""
        report.notes.append(f"no {worker_type} throughput for: {'; '.join(top)}{more}")
    return JobTrace(shifted_and_sorted(jobs), report)
