"""The execution-backend interface: one small surface every engine (local, Ray, Slurm, ...) implements.

The control loop calls a backend from one thread only. A backend never touches the database: it starts
work, reports what became of it and what capacity it lost, and the control loop records all of that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class BackendError(Exception):
    """The backend could not do what was asked (bad command, refused submission)."""


class BackendUnavailable(BackendError):
    """The backend itself is gone (daemon down, API unreachable): its clusters count as lost."""


@dataclass(frozen=True, slots=True)
class Launch:
    """Everything a backend needs to start one placement of one job attempt."""

    job_id: int
    attempt: int
    request_id: str          # the placement's id: the job's name, or name/region/i for a replica
    name: str
    team: str
    command: str
    env: dict[str, str]
    cluster: str
    provider: str
    gpu_type: str
    parts: tuple[tuple[int, int], ...]   # (NVLink domain index, GPUs) of the allocation
    group: int               # tensor-parallel group size (GPUs that share one domain)
    domain_size: int
    checkpoint_dir: str      # survives attempts: a restarted job resumes from what it wrote here
    instance: str = ""       # the identity of the database the job belongs to (job ids are per database)

    @property
    def run_name(self) -> str:
        """A relative path unique to this database, job, attempt and placement: where a backend keeps the
        run's files (its log), so no run ever writes into, or reads, another's."""
        hid = f"{self.job_id}.{self.attempt}.{self.request_id}".replace("/", "_")
        return f"{self.instance}/{hid}" if self.instance else hid

    @property
    def gpus(self) -> int:
        return sum(n for _, n in self.parts)

    def variables(self) -> dict[str, str]:
        """The GPUFLEET_* variables every backend gives the job (docs/live.md lists them)."""
        return {
            "GPUFLEET_JOB_ID": str(self.job_id),
            "GPUFLEET_JOB_NAME": self.name,
            "GPUFLEET_TEAM": self.team,
            "GPUFLEET_ATTEMPT": str(self.attempt),
            "GPUFLEET_CLUSTER": self.cluster,
            "GPUFLEET_PROVIDER": self.provider,
            "GPUFLEET_GPU_TYPE": self.gpu_type,
            "GPUFLEET_GPUS": str(self.gpus),
            "GPUFLEET_TP": str(self.group),
            "GPUFLEET_DOMAINS": ",".join(f"{d}:{n}" for d, n in self.parts),
            "GPUFLEET_CHECKPOINT_DIR": self.checkpoint_dir,
        }


@dataclass(frozen=True, slots=True)
class Status:
    """What became of a started placement. `state`: running | succeeded | failed | lost.

    `lost` means the work vanished without an exit status (its machine or process group died): the
    control loop requeues it from its last checkpoint instead of calling it failed.
    """

    state: str
    exit_code: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Loss:
    """Capacity a backend found gone: a whole cluster (domain None) or one NVLink domain of it."""

    cluster: str
    domain: int | None = None
    reason: str = ""


@dataclass
class Usability:
    usable: bool
    why: str = ""
    extra: str = ""


class Backend(Protocol):
    name: str

    def start(self, launch: Launch) -> dict[str, Any]:
        """Start the work; return a JSON-able handle that `poll`, `cancel` and `logs` accept, even after
        the server restarts."""

    def poll(self, handles: dict[int, dict[str, Any]]) -> dict[int, Status]:
        """Statuses of started placements, keyed as given (placement id -> handle). Work still running may
        be left out of the answer: only changes matter, and tens of thousands may be running."""

    def cancel(self, handle: dict[str, Any]) -> None:
        """Stop the work (no error if it already ended)."""

    def logs(self, handle: dict[str, Any], tail: int | None = None) -> str:
        """The work's captured output so far."""

    def losses(self) -> list[Loss]:
        """Capacity found lost since the last call."""

    def close(self) -> None:
        """Release connections; running work keeps running."""


class CapacitySeller(Protocol):
    """A backend that sells capacity for money (the aws backend's EC2 Capacity Blocks). The control loop
    records a charge before the purchase and settles it after, through these alone."""

    def offering(self, offering_id: str) -> dict[str, Any] | None:
        """An offering seen by the last search, or None."""

    def describe_offering(self, offer: dict[str, Any]) -> dict[str, Any]:
        """The offering as the API shows it and the charge records it (JSON-able)."""

    def describe_reservation(self, bought: dict[str, Any]) -> dict[str, Any]:
        """What a purchase returned, JSON-able (dates as ISO strings)."""

    def buy_capacity_block(self, offering_id: str, upfront_fee: float | None = None,
                           tags: dict[str, str] | None = None) -> dict[str, Any]:
        """Buy the offering; the reservation with `id` and `cost_usd`."""


@dataclass
class BackendSet:
    """The backends of one server, by name; each cluster names its own or takes the default."""

    default: str
    backends: dict[str, Backend] = field(default_factory=dict)

    def for_cluster(self, backend_name: str | None) -> Backend:
        name = backend_name or self.default
        b = self.backends.get(name)
        if b is None:
            raise BackendError(f"no backend {name!r} is configured on this server")
        return b
