"""Gavel (OSDI'20) `.trace` files: job lists built from Philly arrivals and GPU counts.

Tab-separated, no header, in one of Gavel's layouts (told apart by the number of fields):
- 10 (its current `scheduler/traces/`): job_type, command, working_directory, num_steps_arg, needs_data_dir,
  total_steps, scale_factor (GPUs), priority_weight, SLO, arrival_time (s);
- 9: the same without working_directory;
- 7 (the per-VC Philly files): job_type, command, num_steps_arg, needs_data_dir, total_steps, arrival_time,
  scale_factor.
Run time = total_steps / steps-per-second of the job type at that scale on the reference worker type, from
Gavel's `simulation_throughputs.json`: worker type -> "('<job_type>', <scale>)" -> {"null": steps/s}. The
job's rate on every other worker type, over the reference's, is its speed there (a portfolio with those GPU
types, e.g. V100, P100, K80, runs it heterogeneity-aware, as Gavel's own simulator does).
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
LAYOUTS: dict[int, tuple[str, ...]] = {
    7: FIELDS,
    9: ("job_type", "command", "num_steps_arg", "needs_data_dir", "total_steps", "scale_factor",
        "priority_weight", "SLO", "arrival_time"),
    10: ("job_type", "command", "working_directory", "num_steps_arg", "needs_data_dir", "total_steps",
         "scale_factor", "priority_weight", "SLO", "arrival_time"),
}
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
    return read_all_throughputs(path, worker_type)[worker_type]


def read_all_throughputs(path: str, worker_type: str) -> dict[str, dict[str, float]]:
    """worker type -> '(job_type, scale)' -> isolated steps per second; `worker_type` must be there."""
    try:
        table = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise TraceError(f"{path}:{e.lineno}: expected JSON, found an error: {e.msg}") from None
    if not isinstance(table, dict) or not isinstance(table.get(worker_type), dict):
        known = ", ".join(sorted(table)) if isinstance(table, dict) else "none"
        raise TraceError(f"{path}: expected worker type {worker_type!r} at the top level, found {known}")
    return {w: _rates(path, w, entries) for w, entries in table.items() if isinstance(entries, dict)}


def _rates(path: str, worker_type: str, entries: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, entry in entries.items():
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
    table = read_all_throughputs(tput_path, worker_type)
    rates = table[worker_type]
    layout: tuple[str, ...] | None = None
    stem = Path(path).stem
    jobs: list[TraceJob] = []
    unmeasured: Counter[str] = Counter()
    for index, (line, text) in enumerate(read_lines(path)):
        raw = text.split("\t")
        if layout is None:
            layout = LAYOUTS.get(len(raw))
            if layout is None:
                raise TraceError(f"{path}:{line}: expected 10, 9 or 7 tab-separated fields (Gavel's layouts: "
                                 f"{', '.join(LAYOUTS[10])}), found {len(raw)}")
        if len(raw) != len(layout):
            raise TraceError(f"{path}:{line}: expected {len(layout)} tab-separated fields like the first row "
                             f"({', '.join(layout)}), found {len(raw)}")
        fields = dict(zip(layout, raw))
        report.rows_read += 1
        job_type = fields["job_type"]
        to_int(fields["needs_data_dir"], path, line, "needs_data_dir")
        steps = to_int(fields["total_steps"], path, line, "total_steps")
        arrival = to_float(fields["arrival_time"], path, line, "arrival_time")
        gpus = to_int(fields["scale_factor"], path, line, "scale_factor")
        key = str((job_type, gpus))
        rate = rates.get(key)
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
            speeds = {w.upper(): r[key] / rate for w, r in table.items() if r.get(key, 0.0) > 0}
            jobs.append(TraceJob(name=f"gavel-{stem}-{index}", submit_s=arrival, gpus=gpus,
                                 duration_s=steps / rate, queue=stem, speeds=speeds))
    report.rows_used = len(jobs)
    report.notes += [
        f"duration_s = total_steps / isolated steps per second on {worker_type} ({tput_path})",
        "submit_s = arrival_time minus the earliest used arrival",
        f"queue = the trace file's stem ({stem}), the Philly VC the arrivals come from",
        "speeds: the job's steps per second on each worker type over the reference's (upper-cased: V100, ...)",
        "the command, working_directory, num_steps_arg, needs_data_dir, priority_weight and SLO fields are "
        "not used",
    ]
    if unmeasured:
        top = [f"{what} ({n})" for what, n in unmeasured.most_common(5)]
        more = f" and {len(unmeasured) - 5} more" if len(unmeasured) > 5 else ""
        report.notes.append(f"no {worker_type} throughput for: {'; '.join(top)}{more}")
    return JobTrace(shifted_and_sorted(jobs), report)
