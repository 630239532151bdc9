"""What the HTTP side asks the control loop to do: commands, each answered through its future."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field

from ..model.job import JobSpec


class Refused(Exception):
    """A command the loop will not carry out; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# -- commands -------------------------------------------------------------------------------------------
@dataclass
class Command:
    actor: str
    future: Future = field(default_factory=Future, init=False)


@dataclass
class Submit(Command):
    team: str
    spec: JobSpec
    key: str | None = None
    arrived: float | None = None  # when the request reached the server (the submission time recorded)


@dataclass
class Cancel(Command):
    job_id: int
    team: str | None  # None: admin, any team


@dataclass
class LoadPortfolio(Command):
    text: str
    source: str = "<api>"


@dataclass
class PutTeam(Command):
    name: str
    quota_gpus: int
    cohort: str | None = None
    borrowing_limit: int | None = None


@dataclass
class MarkCapacity(Command):
    scope: str            # domain | cluster | provider
    target: str
    domain: int | None = None
    failed: bool = True   # False: repaired
    reason: str = ""


@dataclass
class ReserveCharge(Command):
    """Before buying a Capacity Block through a backend: check the offering, the cluster and the price, and
    commit a pending charge for it (one per offering), so a purchase is on record before money moves."""

    backend: str
    offering_id: str
    cluster: str | None = None
    max_usd: float | None = None   # refuse an offering dearer than this


@dataclass
class SettleCharge(Command):
    """After the purchase: done (with what was bought), failed (refused, nothing bought) or unknown (no
    answer: it may have gone through; the reservation carries the tag gpufleet:charge=<id>)."""

    charge_id: int
    status: str
    bought: dict | None = None
    error: str | None = None
