"""What every trace importer returns: jobs (or inference demand) and a report of what was read and skipped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class TraceError(Exception):
    """A trace file that cannot be read: the message names the file, the line and what was expected."""


@dataclass(slots=True)
class TraceJob:
    """One job of a cluster trace. Times are seconds from the trace's own start (the first submit is 0)."""

    name: str
    submit_s: float
    gpus: int
    duration_s: float              # run time on the trace's own hardware (speed 1.0)
    group: int = 0                 # GPUs that must share one NVLink domain; 0 = let the mapping decide
    gpu_type: str | None = None    # a GPU type named by the trace, if any
    queue: str | None = None       # the trace's virtual cluster / queue / tenant, if any
    priority: int = 0
    kind: str = "batch"            # batch | training | inference
    speeds: dict[str, float] | None = None  # per GPU type, relative to the type `duration_s` was measured on


@dataclass(slots=True)
class DemandPoint:
    """From `t_s` (seconds from the trace start) on, `replicas` replicas are needed."""

    t_s: float
    replicas: int


@dataclass
class ImportReport:
    """Bookkeeping every importer fills in: nothing is dropped without a counted reason."""

    file: str
    format: str
    rows_read: int = 0
    rows_used: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows
    notes: list[str] = field(default_factory=list)      # assumptions applied (e.g. tokens per replica)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    def to_json(self) -> dict:
        return {"file": self.file, "format": self.format, "rows_read": self.rows_read,
                "rows_used": self.rows_used, "rows_skipped": self.rows_skipped,
                "skipped": dict(sorted(self.skipped.items())), "notes": list(self.notes)}


@dataclass
class JobTrace:
    jobs: list[TraceJob]
    report: ImportReport


@dataclass
class DemandTrace:
    """Inference demand derived from a request trace, as a step series of replicas."""

    points: list[DemandPoint]
    report: ImportReport
    window_s: float
