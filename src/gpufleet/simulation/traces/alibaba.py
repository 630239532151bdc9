"""Alibaba GPU cluster trace v2023 (FGD, ATC'23): the `openb_pod_list_*.csv` pod lists.

Columns read: name, num_gpu, gpu_milli (share of one GPU, 1000 = whole), gpu_spec (allowed models joined by
`|`), pod_phase, creation_time, deletion_time, scheduled_time (seconds from the trace start; empty for pods
that were never scheduled). The `openb_pod_list_multigpu*.csv` files have no times and are refused.
"""

from __future__ import annotations

from .base import ImportReport, JobTrace, TraceError, TraceJob
from .generic_csv import check_columns, read_table, shifted_and_sorted, to_float, to_int

REQUIRED = ("name", "num_gpu", "gpu_milli", "gpu_spec", "pod_phase", "creation_time", "deletion_time",
            "scheduled_time")
TIMES = ("creation_time", "deletion_time", "scheduled_time")


def _refuse_request_list(path: str, columns: dict[str, int]) -> None:
    if {"name", "num_gpu", "gpu_milli"} <= set(columns) and not set(TIMES) & set(columns):
        raise TraceError(f"{path}:1: expected columns {', '.join(TIMES)}, found only {', '.join(columns)}: "
                         "this file has no times (it is a resource-request list, not a trace)")
    check_columns(path, columns, REQUIRED)


def _time(text: str, path: str, line: int, column: str) -> float | None:
    return to_float(text, path, line, column) if text else None


def load_alibaba(path: str) -> JobTrace:
    """One job per GPU pod that ran; CPU-only and never-scheduled pods are skipped and counted."""
    report = ImportReport(file=path, format="alibaba")
    columns, rows = read_table(path, ())
    _refuse_request_list(path, columns)
    jobs: list[TraceJob] = []
    fractional = running = 0
    for line, fields in rows:
        report.rows_read += 1
        cell = {c: fields[columns[c]].strip() for c in REQUIRED}
        gpus = to_int(cell["num_gpu"], path, line, "num_gpu")
        milli = to_int(cell["gpu_milli"], path, line, "gpu_milli")
        created = to_float(cell["creation_time"], path, line, "creation_time")
        deleted = _time(cell["deletion_time"], path, line, "deletion_time")
        started = _time(cell["scheduled_time"], path, line, "scheduled_time")
        if gpus < 0:
            raise TraceError(f"{path}:{line}: column num_gpu: expected 0 or more, found {gpus}")
        if gpus == 0:
            report.skip("CPU-only pod")
        elif started is None or cell["pod_phase"] == "Pending":
            report.skip("never scheduled (Pending)")
        elif deleted is None:
            raise TraceError(f"{path}:{line}: column deletion_time: expected a number for a scheduled pod, "
                             "found nothing")
        elif deleted - started <= 0:
            report.skip("duration <= 0")
        else:
            fractional += gpus == 1 and milli < 1000
            running += cell["pod_phase"] == "Running"
            spec = "|".join(m.strip() for m in cell["gpu_spec"].split("|") if m.strip())
            jobs.append(TraceJob(name=cell["name"], submit_s=created, gpus=gpus, duration_s=deleted - started,
                                 gpu_type=spec or None))
    report.rows_used = len(jobs)
    report.notes += [
        f"{fractional} fractional-GPU pods rounded up to 1 GPU",
        "submit_s = creation_time minus the earliest used one; duration_s = deletion_time - scheduled_time",
        f"{running} used pods are marked Running (their phase when the list was taken); "
        "their deletion_time is taken as their end",
        "Failed pods are kept: they held their GPUs until deletion",
        "gpu_type = every model gpu_spec allows (`|`-separated; the pod runs on any of them the portfolio has); "
        "empty = any",
    ]
    return JobTrace(shifted_and_sorted(jobs), report)
