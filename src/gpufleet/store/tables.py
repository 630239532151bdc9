"""The control plane's tables. Changes to them go through an Alembic migration (store/migrations)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Instance(Base):
    """One row: this database's identity (a random hex string made when it was created). Run and checkpoint
    directories are keyed by it, so a new database never reads an older one's checkpoints or logs."""

    __tablename__ = "instance"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Float)


class PortfolioVersion(Base):
    """Every scenario loaded, in order; the newest is the portfolio in force."""

    __tablename__ = "portfolio"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[float] = mapped_column(Float)
    loaded_by: Mapped[str] = mapped_column(String(200))


class StoredPlan(Base):
    """Every plan the server made (on demand or on its schedule), with its inputs; the newest for the
    portfolio in force is the one the `plan` profile follows."""

    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    made_at: Mapped[float] = mapped_column(Float)
    made_by: Mapped[str] = mapped_column(String(200))
    portfolio_id: Mapped[int] = mapped_column(BigInteger, index=True)   # the portfolio version it planned
    horizon_from: Mapped[str] = mapped_column(String(10))
    horizon_to: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(100))
    objective_usd: Mapped[float] = mapped_column(Float)
    gap: Mapped[float] = mapped_column(Float)
    wall_s: Mapped[float] = mapped_column(Float)
    inputs: Mapped[dict] = mapped_column(JSON)      # unmet penalty, why it was made
    guide: Mapped[dict] = mapped_column(JSON)       # what the engine follows (placement/guide.py)
    doc: Mapped[dict | None] = mapped_column(JSON, nullable=True)   # the plan document (`gpufleet plan --json`)


class Team(Base):
    __tablename__ = "teams"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    quota_gpus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cohort: Mapped[str | None] = mapped_column(String(200), nullable=True)
    borrowing_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class Token(Base):
    """API tokens, stored as SHA-256 digests (tokens are 256-bit random, so a plain digest is enough)."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    team: Mapped[str | None] = mapped_column(String(200), nullable=True)  # None: admin
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("team", "key", name="uq_jobs_team_key"),
                      Index("ix_jobs_state", "state"))
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(200), index=True)
    key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    gpus: Mapped[int] = mapped_column(BigInteger)
    priority: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20))  # queued | placed | running | succeeded | failed | cancelled
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    submitted_at: Mapped[float] = mapped_column(Float)
    placed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lost_gpu_hours: Mapped[float] = mapped_column(Float, default=0.0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)


class Placement(Base):
    """One committed request of a job's attempt: a gang (training, batch) or one inference replica."""

    __tablename__ = "placements"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(300))
    cluster: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(200))
    parts: Mapped[list] = mapped_column(JSON)  # [[domain, gpus], ...]
    backend: Mapped[str] = mapped_column(String(50))
    handle: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    cost_per_gpu_hour: Mapped[float | None] = mapped_column(Float, nullable=True)
    placed_at: Mapped[float] = mapped_column(Float)
    released_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    outcome: Mapped[str | None] = mapped_column(String(30), nullable=True)


class Event(Base):
    """Append-only audit log: every decision and state change, with who and why."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(50))
    team: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    message: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class CapacityLoss(Base):
    """Capacity marked failed (a domain, a cluster or a provider) and when it came back."""

    __tablename__ = "capacity_losses"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(20))  # domain | cluster | provider
    target: Mapped[str] = mapped_column(String(200))
    domain: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[float] = mapped_column(Float)
    repaired_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Charge(Base):
    """Money spent outside GPU-hour usage: a Capacity Block's upfront fee, a reservation bought through a
    backend. Usage itself is priced from the placements; both are billed under the contracts by /v1/spend."""

    __tablename__ = "charges"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    provider: Mapped[str] = mapped_column(String(200))
    cluster: Mapped[str | None] = mapped_column(String(200), nullable=True)
    backend: Mapped[str | None] = mapped_column(String(50), nullable=True)
    kind: Mapped[str] = mapped_column(String(50))  # capacity_block | ...
    usd: Mapped[float] = mapped_column(Float)
    # pending (on record before the purchase) | done | failed (nothing bought) | unknown (no answer)
    status: Mapped[str] = mapped_column(String(20), default="done")
    offering_id: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)  # one buy per offer
    ref: Mapped[str | None] = mapped_column(String(200), nullable=True)  # e.g. the capacity reservation id
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class Sample(Base):
    """The fleet over time, one row per series when its value changes (the dashboard's plots): a cluster's
    GPUs (live, used, failed), a team's GPUs in use and its queued and running jobs, a commitment's spend.
    Older rows are thinned: to one per series per minute after an hour, per ten minutes after a day
    (server.history)."""

    __tablename__ = "samples"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    kind: Mapped[str] = mapped_column(String(20))     # cluster | team | contract
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str | None] = mapped_column(String(200), nullable=True)
    gpus: Mapped[int | None] = mapped_column(BigInteger, nullable=True)     # cluster: GPUs in active domains
    used: Mapped[int | None] = mapped_column(BigInteger, nullable=True)     # cluster, team: GPUs allocated
    failed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)   # cluster: GPUs in failed domains
    queued: Mapped[int | None] = mapped_column(BigInteger, nullable=True)   # team: jobs waiting
    running: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # team: jobs holding GPUs
    usd: Mapped[float | None] = mapped_column(Float, nullable=True)         # contract: drawn so far

    __table_args__ = (Index("ix_samples_series", "kind", "name", "at"),)


class Report(Base):
    """A simulation result uploaded to the server (`gpufleet simulate --upload`), shown on the dashboard."""

    __tablename__ = "reports"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    team: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)  # None: an admin's
    actor: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    doc: Mapped[dict] = mapped_column(JSON)          # the `gpufleet simulate --json` document
