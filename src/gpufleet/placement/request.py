"""What the engine is asked to place, what it decides, and what it allocates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(slots=True)
class Request:
    """One placement request: a gang of `gpus` GPUs in tensor-parallel groups of `group` GPUs.

    A group must sit inside one NVLink domain; the whole gang inside one cluster fabric.
    A 1-GPU batch job is `gpus=1, group=1`; an inference replica of 8 GPUs is `gpus=8, group=8`.
    """

    id: str
    gpus: int
    group: int
    speeds: dict[str, float]  # allowed GPU types -> speed relative to the reference type
    team: str = "default"
    kind: str = "batch"  # training | inference | batch
    priority: int = 0
    preemptible: bool = True
    regions: frozenset[str] | None = None
    providers: frozenset[str] | None = None
    checkpoint_interval_s: float = 3600.0
    spread_key: str | None = None  # replicas of one service share a key; the spread scorer reads it
    workload: str | None = None    # the scenario workload it belongs to (the plan scorer reads its share)
    shape: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.gpus < 1 or self.group < 1 or self.gpus % self.group:
            raise ValueError(f"request {self.id}: {self.gpus} GPUs are not whole groups of {self.group}")
        self.reshape()

    def reshape(self) -> None:
        """Recompute `shape`: everything static filters and cluster-scoped scorers read (call after edits)."""
        self.shape = (tuple(sorted(self.speeds.items())), self.regions, self.providers, self.group, self.gpus)

    @property
    def groups(self) -> int:
        return self.gpus // self.group


@dataclass(frozen=True, slots=True)
class Reject:
    """Why a filter turned a cluster down; `message` is built only when someone reads it."""

    filter: str
    template: str
    args: tuple = ()
    detail: Callable[[], tuple] | None = None  # computes the args on demand, when they cost to compute

    @property
    def message(self) -> str:
        return self.template.format(*(self.detail() if self.detail is not None else self.args))


@dataclass(slots=True)
class Allocation:
    """Committed placement: which domains of which cluster hold how many GPUs of a request."""

    request: Request
    cluster: str
    provider: str
    parts: tuple[tuple[int, int], ...]  # (domain index, GPUs)
    started_at: float  # seconds; when the work started (for lost-work accounting)

    @property
    def gpus(self) -> int:
        return self.request.gpus

    def lost_gpu_hours(self, now: float) -> float:
        """GPU-hours of work since the last checkpoint (one every checkpoint interval since the start):
        what a preemption or failure now would lose."""
        since = max(0.0, now - self.started_at)
        interval = self.request.checkpoint_interval_s
        if interval > 0:
            since = since % interval
        return self.request.gpus * since / 3600.0


@dataclass(slots=True)
class Verdict:
    """One candidate cluster's outcome in a decision (recorded when explaining)."""

    cluster: str
    rejected: Reject | None = None
    scores: dict[str, float] | None = None
    total: float | None = None

    def to_json(self) -> dict:
        if self.rejected is not None:
            return {"cluster": self.cluster, "feasible": False, "filter": self.rejected.filter,
                    "reason": self.rejected.message}
        return {"cluster": self.cluster, "feasible": True, "scores": self.scores, "total": self.total}


@dataclass(slots=True)
class Decision:
    request: Request
    cluster: str | None = None
    score: float | None = None
    cost_per_gpu_hour: float | None = None
    victims: tuple[str, ...] = ()
    verdicts: list[Verdict] = field(default_factory=list)
    reason: str | None = None  # why nothing fits (summary), when cluster is None
    permanent: bool = False    # nothing will ever change that: no cluster could take it, or no quota at all

    @property
    def placed(self) -> bool:
        return self.cluster is not None
