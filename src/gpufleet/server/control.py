"""The control loop: one thread that owns the placement engine and every write to the database.

Requests reach it as commands on a queue. Each turn drains a batch of commands, applies them and runs
the scheduler in ONE transaction (group commit: a thousand submissions cost one fsync), then answers
the waiting requests, starts what was placed on its backend, and polls the backends for exits and lost
capacity. The engine is the same placement engine the simulator and planner use; the database is the
truth: if a transaction fails, the loop rebuilds the engine and the queue from it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import Engine as DbEngine
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from ..backends.aws import jsonable, offering_json
from ..backends.base import BackendError, BackendSet, BackendUnavailable, Launch, Status
from ..catalog import Catalog, bundled_catalog
from ..files import FileError, parse_scenario
from ..model.job import JobSpec
from ..model.scenario import Portfolio
from ..model.workloads import Team as TeamSpec
from ..placement.engine import Engine
from ..placement.jobs import replica_requests, request_from_job
from ..placement.request import Allocation, Request
from ..store import tables as T
from .metrics import Metrics
from .spend import HOUR, read_rows, spend

log = logging.getLogger("gpufleet.control")

ACTIVE = ("placed", "running")
DONE = ("succeeded", "failed", "cancelled")


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


# -- in-memory views ------------------------------------------------------------------------------------
@dataclass
class Pending:
    """A queued job: what it asks for and when the scheduler may try it again."""

    id: int
    team: str
    priority: int
    submitted_at: float
    spec: JobSpec
    requests: list[Request]
    attempt: int = 0          # attempts so far (placements of this job)
    tried_epoch: int = -1     # capacity epoch of the last failed try; retried once the epoch moves
    reason: str | None = None

    @property
    def order(self) -> tuple:
        return (-self.priority, self.submitted_at, self.id)

    @property
    def blocker(self) -> tuple:
        """Jobs alike in this are placed or refused alike: one failure stands for all in a pass."""
        return tuple((r.shape, r.team, r.priority, r.preemptible) for r in self.requests)


@dataclass
class Active:
    """A placement the engine holds: its backend and handle once started."""

    placement_id: int
    job_id: int
    request_id: str
    backend: str
    handle: dict[str, Any] | None
    spec: JobSpec | None = None
    team: str = ""
    attempt: int = 0
    launch: Launch | None = None


JOBS, PLACEMENTS, EVENTS = T.Job.__table__, T.Placement.__table__, T.Event.__table__
# Core executemany statements for the hot path (one round trip per batch, no ORM bookkeeping)
_JOB_PLACED = (update(JOBS).where(JOBS.c.id == bindparam("_id"))
               .values(state="placed", placed_at=bindparam("_at"), attempt=bindparam("_attempt"), reason=None))
_JOB_REASON = update(JOBS).where(JOBS.c.id == bindparam("_id")).values(reason=bindparam("_reason"))
_JOB_STARTED = (update(JOBS).where(JOBS.c.id == bindparam("_id"), JOBS.c.state == "placed")
                .values(state="running", started_at=bindparam("_at")))
_PLACEMENT_HANDLE = update(PLACEMENTS).where(PLACEMENTS.c.id == bindparam("_id")).values(handle=bindparam("_h"))


def requests_for(job_id: int, spec: JobSpec, catalog: Catalog) -> list[Request]:
    """The engine requests of one job: one gang, or one per inference replica; ids are namespaced by job."""
    if spec.kind == "inference":
        reqs = replica_requests(spec, catalog)
        for r in reqs:
            r.id = f"{job_id}/{r.id.split('/', 1)[1]}"
        return reqs
    return [request_from_job(spec, catalog, request_id=str(job_id))]


def job_of(request_id: str) -> int:
    return int(request_id.split("/", 1)[0])


class Control:
    def __init__(self, db: DbEngine, backends: BackendSet, data_dir: str | Path,
                 clock: Callable[[], float] = time.time, poll_s: float = 1.0, profile: str | None = None,
                 catalog: Catalog | None = None, metrics: Metrics | None = None, down_after: int = 3,
                 batch_max: int = 4096, spend_every_s: float = 300.0):
        self.db = db
        self.backends = backends
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.poll_s = poll_s
        self.profile = profile
        self.catalog = catalog or bundled_catalog()
        self.metrics = metrics or Metrics()
        self.down_after = down_after
        self.batch_max = batch_max
        self.inbox: queue.Queue[Command | None] = queue.Queue()
        self.portfolio: Portfolio | None = None
        self.engine: Engine | None = None
        self.pending: dict[int, Pending] = {}
        self.fresh: list[int] = []          # queued since the last pass: always tried
        self.active: dict[str, Active] = {}  # request id -> placement
        self.by_job: dict[int, set[str]] = {}  # job id -> its request ids in `active`
        self.by_placement: dict[int, Active] = {}  # placement id -> the same entries as `active`
        self.to_start: dict[str, None] = {}  # request ids placed but not yet started (in order)
        self.to_cancel: list[tuple[str, dict[str, Any]]] = []  # (backend, handle) to stop after commit
        self._victim_lost: dict[str, float] = {}  # GPU-hours lost by evicted requests, until recorded
        self._handles: dict[str, dict[int, dict[str, Any]]] = {}  # backend -> placement id -> handle (started)
        self._started: list[tuple[Active, float]] = []  # started since the last commit: written next turn
        self._refused: list[tuple[Active, str, bool]] = []  # starts a backend refused: handled next turn
        self._next_job_id = 1        # this loop is the only writer of jobs and placements: it numbers them
        self._next_placement_id = 1
        self.epoch = 0                       # moves whenever capacity may have freed up
        self._full_pass_epoch = -1
        self._backend_failures: dict[str, int] = {}
        self._backend_down: set[str] = set()
        # handles to stop on a backend that is down: its work was moved, and whatever still runs there when
        # it answers again is stopped then (kept in memory: a restart in between forgets them)
        self._cancel_later: dict[str, list[dict[str, Any]]] = {}
        self.spend_every_s = spend_every_s
        self._spend_at = 0.0                 # when the commitments' burn-down was last read back
        self._billed_until: float | None = None  # the commitments' bill is summed in `_drawn` up to this hour
        self._drawn: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.ready = threading.Event()

    # == lifecycle ===========================================================================================
    def start(self, scenario_text: str | None = None, scenario_source: str = "<scenario>") -> None:
        self._recover()
        if scenario_text is not None:
            with Session(self.db) as s, s.begin():
                latest = s.scalars(select(T.PortfolioVersion).order_by(T.PortfolioVersion.id.desc())).first()
                if latest is None or latest.text != scenario_text:
                    self._load_portfolio(s, LoadPortfolio("server", scenario_text, scenario_source))
        self._thread = threading.Thread(target=self._run, name="gpufleet-control", daemon=True)
        self._thread.start()
        self.ready.set()

    def stop(self) -> None:
        self._stopping.set()
        self.inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)
        for b in self.backends.backends.values():
            b.close()

    def submit(self, cmd: Command) -> Future:
        if self._stopping.is_set():
            cmd.future.set_exception(Refused("the server is shutting down", 503))
        else:
            self.inbox.put(cmd)
        return cmd.future

    # == the loop ============================================================================================
    def _run(self) -> None:
        next_poll = 0.0
        while not self._stopping.is_set():
            busy = self.to_start or self.to_cancel or self._started or self._refused
            wait = 0.0 if busy else max(0.0, next_poll - time.monotonic())
            cmds = self._drain(wait)
            try:
                if cmds or self._started or self._refused:
                    self._turn(cmds)
                if time.monotonic() >= next_poll:
                    self._poll()
                    next_poll = time.monotonic() + self.poll_s
                if self.to_start or self.to_cancel:
                    self._launch()
            except Exception:  # the database or a backend failed in a way not handled below
                log.exception("control loop turn failed; reloading state from the database")
                for c in cmds:  # the details are in the log; the client learns only that it may retry
                    if not c.future.done():
                        c.future.set_exception(Refused("the server could not record this; try again", 503))
                try:
                    self._recover()
                except Exception:
                    log.exception("reload failed; retrying")
                    time.sleep(1.0)

    def _drain(self, wait: float) -> list[Command]:
        try:
            first = self.inbox.get(timeout=wait) if wait > 0 else self.inbox.get_nowait()
        except queue.Empty:
            return []
        cmds = [] if first is None else [first]
        while len(cmds) < self.batch_max:
            try:
                c = self.inbox.get_nowait()
            except queue.Empty:
                break
            if c is not None:
                cmds.append(c)
        return cmds

    def _turn(self, cmds: list[Command]) -> None:
        """Apply a batch of commands and schedule, in one transaction; answer only after it commits."""
        results: list[tuple[Command, Any, BaseException | None]] = []
        with Session(self.db, expire_on_commit=False) as s, s.begin():
            self._flush_started(s)
            submits = [c for c in cmds if isinstance(c, Submit)]
            if submits:
                results += self._submit(s, submits)
            for c in cmds:
                if isinstance(c, Submit):
                    continue
                try:
                    with s.begin_nested():
                        results.append((c, self._apply(s, c), None))
                except Refused as e:
                    results.append((c, None, e))
            self._schedule(s)
        for c, value, exc in results:
            if exc is not None:
                c.future.set_exception(exc)
            else:
                c.future.set_result(value)

    # == commands ============================================================================================
    def _submit(self, s: Session, cmds: list[Submit]) -> list[tuple[Command, Any, BaseException | None]]:
        now = self.clock()
        by_team: dict[str, set[str]] = {}
        for c in cmds:
            if c.key:
                by_team.setdefault(c.team, set()).add(c.key)
        existing: dict[tuple[str, str], int] = {}
        for team, team_keys in by_team.items():  # (team, key) is the unique index: look up through it
            keys = sorted(team_keys)
            for i in range(0, len(keys), 500):
                rows = s.execute(select(JOBS.c.id, JOBS.c.key).where(JOBS.c.team == team,
                                                                       JOBS.c.key.in_(keys[i:i + 500])))
                existing.update({(team, k): jid for jid, k in rows})
        out: list[tuple[Command, Any, BaseException | None]] = []
        batch_keys: dict[tuple[str, str], int] = {}
        rows: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        created = duplicates = 0
        for c in cmds:
            ref = (c.team, c.key) if c.key else None
            known = existing.get(ref) or batch_keys.get(ref) if ref else None
            if known is not None:
                out.append((c, {"id": known, "created": False}, None))
                duplicates += 1
                continue
            jid = self._next_job_id
            try:  # a job the engine cannot even express is refused alone, not with its whole batch
                reqs = requests_for(jid, c.spec, self.catalog)
            except (ValueError, KeyError) as e:
                out.append((c, None, Refused(f"job: {e}", 422)))
                continue
            self._next_job_id += 1
            if ref:
                batch_keys[ref] = jid
            at = c.arrived if c.arrived is not None else now
            spec, gpus = c.spec, _total_gpus(c.spec)
            rows.append({"id": jid, "team": c.team, "key": c.key, "name": spec.name, "kind": spec.kind, "gpus": gpus,
                         "priority": spec.effective_priority, "spec": spec.model_dump(mode="json", exclude_defaults=True),
                         "state": "queued", "reason": None, "submitted_at": at, "placed_at": None,
                         "started_at": None, "finished_at": None, "attempt": 0, "exit_code": None,
                         "lost_gpu_hours": 0.0, "cancel_requested": False})
            events.append({"at": now, "actor": c.actor, "kind": "submitted", "team": c.team, "job_id": jid,
                           "message": f"{spec.kind} job {spec.name!r} submitted ({gpus:,} GPUs)",
                           "detail": {"key": c.key} if c.key else None})
            self.pending[jid] = Pending(jid, c.team, spec.effective_priority, at, spec, reqs)
            self.fresh.append(jid)
            out.append((c, {"id": jid, "created": True}, None))
            created += 1
        if rows:
            s.execute(insert(JOBS), rows)
            s.execute(insert(EVENTS), events)
        self.metrics.submissions.inc(created)
        self.metrics.duplicates.inc(duplicates)
        return out

    def _apply(self, s: Session, c: Command) -> Any:
        if isinstance(c, Cancel):
            return self._cancel(s, c)
        if isinstance(c, LoadPortfolio):
            return self._load_portfolio(s, c)
        if isinstance(c, PutTeam):
            return self._put_team(s, c)
        if isinstance(c, MarkCapacity):
            return self._mark_capacity(s, c)
        if isinstance(c, ReserveCharge):
            return self._reserve_charge(s, c)
        if isinstance(c, SettleCharge):
            return self._settle_charge(s, c)
        raise Refused(f"unknown command {type(c).__name__}")

    def _cancel(self, s: Session, c: Cancel) -> dict:
        job = s.get(T.Job, c.job_id)
        if job is None or (c.team is not None and job.team != c.team):
            raise Refused(f"no job {c.job_id}", 404)
        if job.state in DONE:
            return {"id": job.id, "state": job.state}
        now = self.clock()
        self.pending.pop(job.id, None)
        self._release_job(s, job.id, "cancelled", now, stop=True)
        job.state, job.finished_at, job.reason = "cancelled", now, f"cancelled by {c.actor}"
        self._event(s, c.actor, "cancelled", job, f"job {job.name!r} cancelled")
        self.metrics.finished.labels("cancelled").inc()
        return {"id": job.id, "state": "cancelled"}

    def _load_portfolio(self, s: Session, c: LoadPortfolio) -> dict:
        try:
            portfolio = parse_scenario(c.text, c.source, self.catalog)
        except FileError as e:
            raise Refused("; ".join(str(p) for p in e.problems), 422) from e
        now = self.clock()
        s.add(T.PortfolioVersion(name=portfolio.scenario.name, text=c.text, loaded_at=now, loaded_by=c.actor))
        for t in portfolio.scenario.teams:
            row = s.get(T.Team, t.name)
            if row is None:
                s.add(T.Team(name=t.name, quota_gpus=t.quota_gpus, cohort=t.cohort,
                             borrowing_limit=t.borrowing_limit_gpus, created_at=now))
            else:
                row.quota_gpus, row.cohort, row.borrowing_limit = t.quota_gpus, t.cohort, t.borrowing_limit_gpus
        s.flush()
        self._rebuild(s, portfolio.scenario, now, c.actor)
        self._event(s, c.actor, "portfolio", None,
                    f"portfolio {portfolio.scenario.name!r} loaded: {len(portfolio.clusters)} clusters, "
                    f"{len(portfolio.contracts)} contracts")
        return {"name": portfolio.scenario.name, "clusters": len(portfolio.clusters)}

    def _put_team(self, s: Session, c: PutTeam) -> dict:
        now = self.clock()
        row = s.get(T.Team, c.name)
        if row is None:
            row = T.Team(name=c.name, created_at=now)
            s.add(row)
        row.quota_gpus, row.cohort, row.borrowing_limit = c.quota_gpus, c.cohort, c.borrowing_limit
        s.flush()
        if self.portfolio is not None:
            self._rebuild(s, self.portfolio.scenario, now, c.actor)
        self._event(s, c.actor, "team", None, f"team {c.name!r}: quota {c.quota_gpus:,} GPUs", team=c.name)
        return {"name": c.name, "quota_gpus": c.quota_gpus, "cohort": c.cohort, "borrowing_limit": c.borrowing_limit}

    def _mark_capacity(self, s: Session, c: MarkCapacity) -> dict:
        eng = self._need_engine()
        now = self.clock()
        clusters = eng.state.by_name
        if c.scope == "cluster" and c.target not in clusters:
            raise Refused(f"no cluster {c.target!r} in the portfolio", 404)
        if c.scope == "provider" and c.target not in {cs.provider for cs in eng.state.clusters}:
            raise Refused(f"no provider {c.target!r} in the portfolio", 404)
        if c.scope == "domain":
            cs = clusters.get(c.target)
            if cs is None:
                raise Refused(f"no cluster {c.target!r} in the portfolio", 404)
            if c.domain is None or not 0 <= c.domain < len(cs.domains.free):
                raise Refused(f"cluster {c.target!r} has no domain {c.domain}", 404)
        hit: list[str] = []
        if c.failed:
            hit = self._fail(c.scope, c.target, c.domain)
            s.add(T.CapacityLoss(scope=c.scope, target=c.target, domain=c.domain, reason=c.reason or "marked failed",
                                 failed_at=now))
            what = f"{c.scope} {c.target}" + (f" domain {c.domain}" if c.domain is not None else "")
            self._event(s, c.actor, "capacity_lost", None, f"{what} failed: {c.reason or 'marked failed'}",
                        detail={"scope": c.scope, "target": c.target, "domain": c.domain, "jobs": sorted(
                            {job_of(r) for r in hit})})
            self._requeue(s, hit, now, f"{what} failed", c.actor)
        else:
            self._repair(c.scope, c.target, c.domain)
            q = update(T.CapacityLoss).where(T.CapacityLoss.scope == c.scope, T.CapacityLoss.target == c.target,
                                             T.CapacityLoss.repaired_at.is_(None))
            if c.domain is not None:
                q = q.where(T.CapacityLoss.domain == c.domain)
            s.execute(q.values(repaired_at=now))
            self._event(s, c.actor, "capacity_repaired", None, f"{c.scope} {c.target} back in service",
                        detail={"scope": c.scope, "target": c.target, "domain": c.domain})
            self.epoch += 1
        return {"scope": c.scope, "target": c.target, "failed": c.failed, "requeued": sorted({job_of(r) for r in hit})}

    def seller(self, name: str) -> Any:
        """The backend `name` if it sells Capacity Blocks, else Refused."""
        b = self.backends.backends.get(name)
        if b is None:
            raise Refused(f"no backend {name!r} is configured on this server", 404)
        if not hasattr(b, "buy_capacity_block"):
            raise Refused(f"backend {name!r} does not sell capacity blocks (the aws backend does)")
        return b

    def _reserve_charge(self, s: Session, c: ReserveCharge) -> dict:
        b = self.seller(c.backend)
        eng = self._need_engine()
        mine = [cs for cs in eng.state.clusters if (cs.spec.backend or self.backends.default) == c.backend]
        if c.cluster is not None:
            cs = next((x for x in mine if x.name == c.cluster), None)
            if cs is None:
                raise Refused(f"cluster {c.cluster!r} is not served by backend {c.backend!r}", 404)
        elif len(mine) == 1:
            cs = mine[0]
        else:
            raise Refused(f"backend {c.backend!r} serves {len(mine)} clusters: name the one the block is for")
        offer = b.offering(c.offering_id)
        if offer is None:
            raise Refused(f"no known offering {c.offering_id!r}: find offerings first", 404)
        if offer.get("UpfrontFee") is None:
            raise Refused(f"offering {c.offering_id} has no upfront fee to check and record")
        fee = float(offer["UpfrontFee"])
        if c.max_usd is not None and fee > c.max_usd:
            raise Refused(f"offering {c.offering_id} costs ${fee:,.2f}, more than the ${c.max_usd:,.2f} allowed")
        seen = s.scalars(select(T.Charge).where(T.Charge.offering_id == c.offering_id)).first()
        if seen is not None:
            raise Refused(f"offering {c.offering_id} is already charge {seen.id} ({seen.status})", 409)
        row = T.Charge(at=self.clock(), provider=cs.provider, cluster=cs.name, backend=c.backend,
                       kind="capacity_block", usd=fee, status="pending", offering_id=c.offering_id,
                       actor=c.actor, detail={"offering": offering_json(offer)})
        s.add(row)
        s.flush()
        return {"charge_id": row.id, "cluster": cs.name, "provider": cs.provider, "usd": fee}

    def _settle_charge(self, s: Session, c: SettleCharge) -> dict:
        row = s.get(T.Charge, c.charge_id)
        if row is None or row.status != "pending":
            raise Refused(f"no pending charge {c.charge_id}", 404)
        row.status = c.status
        detail = dict(row.detail or {})
        if c.bought is not None:
            bought = jsonable(c.bought)
            detail["reservation"] = bought
            row.ref = bought.get("id")
            if bought.get("cost_usd") is not None:
                row.usd = float(bought["cost_usd"])
        if c.error:
            detail["error"] = c.error
        row.detail = detail
        what = f"capacity block {row.ref or row.offering_id} for {row.cluster} through {row.backend}"
        if c.status == "done":
            self._event(s, c.actor, "charge", None, f"{what} bought: ${row.usd:,.2f}",
                        detail={"charge": row.id, "kind": row.kind, "cluster": row.cluster,
                                "provider": row.provider, "usd": row.usd, "reservation": detail.get("reservation")})
            self._spend_at = 0.0  # the burn-down moved: refresh it at the next poll
        else:
            self._event(s, c.actor, "charge_failed", None, f"{what} {c.status}: {c.error or ''}".rstrip(": "),
                        detail={"charge": row.id, "status": c.status, "offering": row.offering_id})
        return {"charge_id": row.id, "status": row.status, "backend": row.backend, "cluster": row.cluster,
                "provider": row.provider, "usd": row.usd, "reservation": detail.get("reservation")}

    def _fail(self, scope: str, target: str, domain: int | None) -> list[str]:
        eng = self._need_engine()
        if scope == "domain":
            return eng.fail_domain(target, domain or 0)
        if scope == "cluster":
            return eng.fail_cluster(target)
        return eng.fail_provider(target)

    def _repair(self, scope: str, target: str, domain: int | None) -> None:
        eng = self._need_engine()
        if scope == "domain":
            eng.repair_domain(target, domain or 0)
        elif scope == "cluster":
            eng.repair_cluster(target)
        else:
            eng.repair_provider(target)

    def _need_engine(self) -> Engine:
        if self.engine is None:
            raise Refused("no portfolio is loaded yet: load a scenario first (PUT /v1/portfolio)", 409)
        return self.engine

    # == scheduling ==========================================================================================
    def _enqueue(self, job_id: int, team: str, spec: JobSpec, submitted_at: float, attempt: int) -> None:
        self.pending[job_id] = Pending(job_id, team, spec.effective_priority, submitted_at, spec,
                                       requests_for(job_id, spec, self.catalog), attempt)
        self.fresh.append(job_id)

    def _schedule(self, s: Session) -> None:
        """Place queued work in priority order. A full pass happens when capacity may have freed up; in
        between only newly queued jobs are tried, so a long queue of blocked work costs nothing per turn."""
        if self.engine is None or not self.pending:
            self.fresh.clear()
            return
        if self._full_pass_epoch != self.epoch:
            order = sorted(self.pending.values(), key=lambda p: p.order)
            self._full_pass_epoch = self.epoch
        else:
            order = sorted((self.pending[j] for j in set(self.fresh) if j in self.pending), key=lambda p: p.order)
        self.fresh.clear()
        if not order:
            return
        now = self.clock()
        self.engine.set_time(now)
        blocked: dict[tuple, str] = {}
        changed: list[dict] = []
        placed: list[tuple[Pending, list[tuple[Allocation, float | None]]]] = []
        for p in order:
            if p.id not in self.pending:  # preempted-and-requeued victims may appear mid-pass
                continue
            why = blocked.get(p.blocker)
            if why is None:
                got, why, victims = self._try(p, now)
                if got is not None:
                    if victims:
                        self._preempt(s, victims, now, p)
                    placed.append((p, got))
                    del self.pending[p.id]
                    continue
                blocked[p.blocker] = why = why or "waiting for capacity"
            if p.reason != why:
                changed.append({"_id": p.id, "_reason": why})
            p.tried_epoch, p.reason = self.epoch, why
        if changed:  # why each job waits, written only when it changes
            s.execute(_JOB_REASON, changed)
        if placed:
            self._record_placements(s, placed, now)

    def _try(self, p: Pending, now: float) -> tuple[list | None, str | None, list[str]]:
        """All of a job's requests or none: a gang is one request, a service all its replicas."""
        eng = self.engine
        assert eng is not None
        got: list[tuple[Allocation, float | None]] = []
        victims: list[str] = []
        # Only a single-request job may preempt: a service whose later replica did not fit must be able to
        # give back its earlier ones without having evicted anyone.
        preempt = len(p.requests) == 1
        for r in p.requests:
            d = eng.decide(r, allow_preemption=preempt)
            if not d.placed:
                for a, _ in got:
                    eng.release(a.request.id)
                return None, d.reason, []
            for v in d.victims:
                va = eng.state.allocations.get(v)
                if va is not None:
                    victims.append(v)
                    self._victim_lost[v] = va.lost_gpu_hours(now)
            got.append((eng.commit(d), d.cost_per_gpu_hour))
        return got, None, victims

    def _record_placements(self, s: Session, placed: list, now: float) -> None:
        eng = self.engine
        assert eng is not None
        rows, events, jobs = [], [], []
        for p, allocs in placed:
            p.attempt += 1
            jobs.append({"_id": p.id, "_at": now, "_attempt": p.attempt})
            for a, cost in allocs:
                cs = eng.state.by_name[a.cluster]
                pid = self._next_placement_id
                self._next_placement_id += 1
                backend = cs.spec.backend or self.backends.default
                rows.append({"id": pid, "job_id": p.id, "attempt": p.attempt, "request_id": a.request.id,
                             "cluster": a.cluster, "provider": a.provider, "parts": [list(x) for x in a.parts],
                             "backend": backend, "handle": None, "cost_per_gpu_hour": cost, "placed_at": now,
                             "released_at": None, "outcome": None})
                self._add_active(Active(pid, p.id, a.request.id, backend, None, p.spec, p.team, p.attempt))
                self.to_start[a.request.id] = None
            where = sorted({a.cluster for a, _ in allocs})
            events.append({"at": now, "actor": "scheduler", "kind": "placed", "team": p.team, "job_id": p.id,
                           "message": f"placed on {', '.join(where)} ({sum(a.gpus for a, _ in allocs):,} GPUs)",
                           "detail": {"placements": [{"request": a.request.id, "cluster": a.cluster,
                                                      "provider": a.provider, "parts": [list(x) for x in a.parts],
                                                      "cost_per_gpu_hour": c} for a, c in allocs]}})
            self.metrics.submit_to_place.observe(max(0.0, now - p.submitted_at))
        s.execute(insert(PLACEMENTS), rows)
        s.execute(_JOB_PLACED, jobs)
        s.execute(insert(EVENTS), events)
        self.metrics.placements.inc(len(jobs))

    def _preempt(self, s: Session, victims: list[str], now: float, by: Pending) -> None:
        """The engine already released the victims' allocations; requeue their jobs (whole jobs)."""
        jobs = sorted({job_of(v) for v in victims})
        for jid in jobs:
            self._requeue_job(s, jid, now, f"preempted by job {by.id} ({by.spec.name}, priority {by.priority})",
                              "scheduler", outcome="preempted")

    # == failure and requeue =================================================================================
    def _requeue(self, s: Session, request_ids: list[str], now: float, why: str, actor: str) -> None:
        for jid in sorted({job_of(r) for r in request_ids}):
            self._requeue_job(s, jid, now, why, actor, outcome="lost")

    def _requeue_job(self, s: Session, job_id: int, now: float, why: str, actor: str, outcome: str) -> None:
        job = s.get(T.Job, job_id)
        if job is None or job.state in DONE:
            return
        lost = self._release_job(s, job_id, outcome, now, stop=True)
        job.state, job.reason = "queued", why
        job.lost_gpu_hours = (job.lost_gpu_hours or 0.0) + lost
        self._event(s, actor, "requeued", job, f"requeued: {why}; {_gpu_hours(lost)} since the last checkpoint lost",
                    detail={"lost_gpu_hours": lost, "outcome": outcome})
        self._enqueue(job.id, job.team, JobSpec.model_validate(job.spec), job.submitted_at, job.attempt)
        self.metrics.requeues.inc()
        self.epoch += 1

    def _release_job(self, s: Session, job_id: int, outcome: str, now: float, stop: bool) -> float:
        """Free every engine allocation of the job, close its placement rows, stop its work (after commit)."""
        eng = self.engine
        lost = 0.0
        for rid in sorted(self.by_job.get(job_id, ())):
            act = self._pop_active(rid)
            lost += self._victim_lost.pop(rid, 0.0)
            if act is None:
                continue
            if eng is not None:
                alloc = eng.state.allocations.get(rid)
                if alloc is not None:
                    lost += alloc.lost_gpu_hours(now)
                    eng.release(rid)
            if stop and act.handle is not None:
                self.to_cancel.append((act.backend, act.handle))
            self.to_start.pop(rid, None)
            s.execute(update(T.Placement).where(T.Placement.id == act.placement_id)
                      .values(released_at=now, outcome=outcome))
        self.epoch += 1
        return lost

    # == backends ============================================================================================
    def _launch(self) -> None:
        """Start placed work and stop cancelled work, outside any transaction; what happened is written by the
        next turn's transaction (`_flush_started`)."""
        cancels, self.to_cancel = self.to_cancel, []
        for name, handle in cancels:
            if name in self._backend_down:  # it would only time out and hold up starts elsewhere
                self._cancel_later.setdefault(name, []).append(handle)
                continue
            try:
                self.backends.for_cluster(name).cancel(handle)
            except BackendUnavailable as e:
                log.warning("could not stop work on backend %s (will retry when it answers): %s", name, e)
                self._cancel_later.setdefault(name, []).append(handle)
            except BackendError as e:
                log.warning("could not stop work on backend %s: %s", name, e)
        if not self.to_start or self.engine is None:
            return
        starts, self.to_start = list(self.to_start), {}
        for rid in starts:
            act = self.active.get(rid)
            if act is None or act.handle is not None or act.spec is None:
                continue
            launch = self._launch_for(act)
            try:
                handle = self.backends.for_cluster(act.backend).start(launch)
            except BackendUnavailable as e:
                self._refused.append((act, str(e), True))
                continue
            except BackendError as e:
                self._refused.append((act, str(e), False))
                continue
            act.handle, act.launch = handle, launch
            self._handles.setdefault(act.backend, {})[act.placement_id] = handle
            self._started.append((act, self.clock()))

    def _flush_started(self, s: Session) -> None:
        """Write what `_launch` did: handles, running states, start events; act on refused starts."""
        started, self._started = self._started, []
        if started:
            s.execute(_PLACEMENT_HANDLE, [{"_id": a.placement_id, "_h": a.handle} for a, _ in started])
            s.execute(_JOB_STARTED, [{"_id": a.job_id, "_at": at} for a, at in started])
            s.execute(insert(EVENTS), [{"at": at, "actor": "scheduler", "kind": "started", "team": a.team,
                                        "job_id": a.job_id, "message": f"started on {a.backend} ({a.launch.cluster})"
                                        if a.launch else f"started on {a.backend}", "detail": {"request": a.request_id}}
                                       for a, at in started])
        refused, self._refused = self._refused, []
        now = self.clock()
        for act, why, unavailable in refused:
            if act.request_id not in self.active:
                continue
            if unavailable:
                self._backend_lost(s, act.backend, why, now)
            else:
                self._finish(s, act.job_id, "failed", None, now, f"the backend refused it: {why}")

    def _launch_for(self, act: Active) -> Launch:
        eng = self.engine
        assert eng is not None and act.spec is not None
        spec = act.spec
        alloc = eng.state.allocations[act.request_id]
        cs = eng.state.by_name[alloc.cluster]
        ckpt = self.data_dir / "checkpoints" / str(act.job_id)
        return Launch(job_id=act.job_id, attempt=act.attempt, request_id=act.request_id, name=spec.name,
                      team=act.team, command=spec.command or "", env=dict(spec.env), cluster=alloc.cluster,
                      provider=alloc.provider, gpu_type=cs.spec.gpu.name, parts=alloc.parts,
                      group=alloc.request.group, domain_size=cs.spec.domain_size, checkpoint_dir=str(ckpt))

    def _poll(self) -> None:
        """Ask each backend how its work is doing and what capacity it lost; act on the answers."""
        if self.engine is None:
            return
        now = self.clock()
        self.engine.set_time(now)
        if now - self._spend_at >= self.spend_every_s:
            self._refresh_spend(now)
        by_backend = self._handles
        statuses: dict[int, Status] = {}
        losses = []
        unreachable: list[tuple[str, str]] = []
        names = set(by_backend) | set(self.backends.backends)
        for name in sorted(names):
            b = self.backends.backends.get(name)
            if b is None:
                continue
            try:
                if name in by_backend:
                    statuses.update(b.poll(by_backend[name]))
                losses += [(name, x) for x in b.losses()]
                self._backend_failures[name] = 0
                if name not in self._backend_down and name in self._cancel_later:
                    self.to_cancel += [(name, h) for h in self._cancel_later.pop(name)]  # it answers: retry
                if name in self._backend_down:
                    unreachable.append((name, ""))  # answered again
            except BackendUnavailable as e:
                self._backend_failures[name] = self._backend_failures.get(name, 0) + 1
                if self._backend_failures[name] >= self.down_after and name not in self._backend_down:
                    unreachable.append((name, str(e)))
            except BackendError as e:
                log.warning("polling backend %s failed: %s", name, e)
        changed = {pid: st for pid, st in statuses.items() if st.state != "running"}
        if not changed and not losses and not unreachable and self._full_pass_epoch == self.epoch:
            return
        owner = {pid: self.by_placement[pid] for pid in changed if pid in self.by_placement}
        with Session(self.db) as s, s.begin():
            self._flush_started(s)
            for name, why in unreachable:
                if why:
                    self._backend_lost(s, name, why, now)
                else:
                    self._backend_back(s, name, now)
            for name, loss in losses:
                if loss.cluster not in self.engine.state.by_name:
                    log.warning("backend %s reported capacity lost on %r, which is not in the portfolio",
                                name, loss.cluster)
                    continue
                scope = "cluster" if loss.domain is None else "domain"
                try:
                    with s.begin_nested():
                        self._mark_capacity(s, MarkCapacity(f"backend:{name}", scope, loss.cluster, loss.domain,
                                                            reason=loss.reason or "reported by the backend"))
                except Refused as e:  # the backend and the portfolio disagree (a domain the cluster lacks)
                    log.warning("backend %s reported a loss gpufleet cannot apply: %s (%s)", name, e, loss.reason)
            for pid, st in changed.items():
                act = owner.get(pid)
                if act is None or act.request_id not in self.active:
                    continue
                if st.state == "lost":
                    self._requeue(s, [act.request_id], now, f"its work on {act.backend} vanished: {st.message}",
                                  f"backend:{act.backend}")
                else:
                    self._placement_done(s, act, st, now)
            self._schedule(s)

    def _placement_done(self, s: Session, act: Active, st: Status, now: float) -> None:
        s.execute(update(T.Placement).where(T.Placement.id == act.placement_id)
                  .values(released_at=now, outcome=st.state))
        self._pop_active(act.request_id)
        if self.engine is not None:
            self.engine.release(act.request_id)
        self.epoch += 1
        others = self.by_job.get(act.job_id)
        if st.state == "failed":
            if others:  # one replica or rank failing fails the job: stop the rest
                self._release_job(s, act.job_id, "stopped", now, stop=True)
            self._finish(s, act.job_id, "failed", st.exit_code, now, st.message or f"exit status {st.exit_code}")
        elif not others:
            self._finish(s, act.job_id, "succeeded", st.exit_code, now, None)

    def _finish(self, s: Session, job_id: int, state: str, code: int | None, now: float, why: str | None) -> None:
        job = s.get(T.Job, job_id)
        if job is None or job.state in DONE:
            return
        self._release_job(s, job_id, state, now, stop=False)
        job.state, job.exit_code, job.finished_at, job.reason = state, code, now, why
        self._event(s, "scheduler", state, job, f"job {job.name!r} {state}" + (f": {why}" if why else ""),
                    detail={"exit_code": code})
        self.metrics.finished.labels(state).inc()

    def _backend_lost(self, s: Session, name: str, why: str, now: float) -> None:
        """A backend stopped answering: every cluster it serves is lost until it answers again."""
        eng = self._need_engine()
        self._backend_down.add(name)
        for cs in eng.state.clusters:
            if (cs.spec.backend or self.backends.default) == name and cs.up:
                self._mark_capacity(s, MarkCapacity(f"backend:{name}", "cluster", cs.name,
                                                    reason=f"backend {name} unreachable: {why}"))

    def _backend_back(self, s: Session, name: str, now: float) -> None:
        eng = self._need_engine()
        self._backend_down.discard(name)
        self.to_cancel += [(name, h) for h in self._cancel_later.pop(name, [])]
        for cs in eng.state.clusters:
            if (cs.spec.backend or self.backends.default) == name and not cs.up:
                self._mark_capacity(s, MarkCapacity(f"backend:{name}", "cluster", cs.name, failed=False,
                                                    reason=f"backend {name} answers again"))

    def _refresh_spend(self, now: float) -> None:
        """Give the engine what each spend commitment has drawn so far (usage billed under the contracts plus
        fees), the burn-down its cost scorer weighs. Incremental: whole UTC hours not yet billed are billed
        and added to `_drawn` (the bill of a window is the sum of its hours' bills); the unfinished hour is
        billed each time on top; after a portfolio change, from the start again."""
        eng, portfolio = self.engine, self.portfolio
        self._spend_at = now
        commitments = [k for k in eng.state.contracts if k.kind == "spend_commitment"] if eng else []
        if not commitments or portfolio is None:
            return
        start = self._billed_until if self._billed_until is not None else min(k.start for k in commitments)
        end = max(start, float(int(now // HOUR) * HOUR))
        try:
            with Session(self.db) as s:
                usage, fees = read_rows(s, start, now)
                done = spend(portfolio, usage, fees, start, end) if end > start else None
                current = spend(portfolio, usage, fees, end, now)  # the unfinished hour: not kept
        except Exception:  # keep the last burn-down; try again at the next refresh
            log.exception("could not read the spend commitments' burn-down back")
            return
        if self._billed_until is None:
            self._drawn = {}
        if done is not None:
            for r in done["contracts"]:
                self._drawn[r["contract"]] = self._drawn.get(r["contract"], 0.0) + r["usd"]
        self._billed_until = end
        now_usd = {r["contract"]: r["usd"] for r in current["contracts"]}
        for k in commitments:
            k.spent_usd = self._drawn.get(k.name, 0.0) + now_usd.get(k.name, 0.0)

    # == rebuild from the database ===========================================================================
    def _rebuild(self, s: Session, scenario: Any, now: float, actor: str) -> None:
        """A new engine for a changed portfolio or quotas; running work is taken back where it runs."""
        from ..model.checks import build_portfolio
        teams = [TeamSpec(name=t.name, quota_gpus=t.quota_gpus or 0, cohort=t.cohort,
                          borrowing_limit_gpus=t.borrowing_limit) for t in s.scalars(select(T.Team))]
        portfolio = build_portfolio(scenario.model_copy(update={"teams": teams}), self.catalog)
        engine = Engine(portfolio, now, self.profile)
        for loss in s.scalars(select(T.CapacityLoss).where(T.CapacityLoss.repaired_at.is_(None))):
            try:
                if loss.scope == "domain" and loss.target in engine.state.by_name:
                    engine.fail_domain(loss.target, loss.domain or 0)
                elif loss.scope == "cluster" and loss.target in engine.state.by_name:
                    engine.fail_cluster(loss.target)
                elif loss.scope == "provider":
                    engine.fail_provider(loss.target)
            except IndexError:
                pass
        old_engine, self.engine, self.portfolio = self.engine, engine, portfolio
        self._spend_at = 0.0  # a new engine starts with no burn-down: read it back at the next poll
        self._billed_until = None  # contracts may have changed: bill them from the start again
        misfits: list[str] = []
        if self.active:
            specs = {j.id: j for j in s.scalars(select(T.Job).where(T.Job.id.in_({a.job_id for a in self.active.values()})))}
            for rid, act in list(self.active.items()):
                alloc = old_engine.state.allocations.get(rid) if old_engine is not None else None
                job = specs.get(act.job_id)
                if alloc is None or job is None or engine.adopt(alloc.request, alloc.cluster, alloc.parts,
                                                               alloc.started_at) is None:
                    misfits.append(rid)
        for p in self.pending.values():
            p.tried_epoch = -1
        if misfits:
            self._requeue(s, misfits, now, "its cluster left the portfolio or shrank", actor)
        self.epoch += 1

    def _recover(self) -> None:
        """Read everything back from the database: portfolio, teams, losses, running work, the queue."""
        self.engine = self.portfolio = None
        self.pending.clear()
        self.fresh.clear()
        self.active.clear()
        self.by_job.clear()
        self.by_placement.clear()
        self._handles.clear()
        self._started.clear()
        self._refused.clear()
        self.to_start.clear()
        now = self.clock()
        with Session(self.db) as s, s.begin():
            self._next_job_id = (s.scalar(select(func.max(JOBS.c.id))) or 0) + 1
            self._next_placement_id = (s.scalar(select(func.max(PLACEMENTS.c.id))) or 0) + 1
            latest = s.scalars(select(T.PortfolioVersion).order_by(T.PortfolioVersion.id.desc())).first()
            if latest is not None:
                portfolio = parse_scenario(latest.text, f"portfolio version {latest.id}", self.catalog)
                self._rebuild(s, portfolio.scenario, now, "server")
            rows = s.execute(select(T.Placement, T.Job).join(T.Job, T.Job.id == T.Placement.job_id)
                             .where(T.Placement.released_at.is_(None))).all()
            misfits: list[str] = []
            for pl, job in rows:
                ok = False
                spec = JobSpec.model_validate(job.spec)
                if self.engine is not None and job.state in ACTIVE:
                    req = next((r for r in requests_for(job.id, spec, self.catalog) if r.id == pl.request_id), None)
                    if req is not None:
                        ok = self.engine.adopt(req, pl.cluster, tuple((int(d), int(n)) for d, n in pl.parts),
                                               pl.placed_at) is not None
                self._add_active(Active(pl.id, job.id, pl.request_id, pl.backend, pl.handle, spec, job.team,
                                        pl.attempt))
                if not ok:
                    misfits.append(pl.request_id)
                elif pl.handle is None:
                    self.to_start[pl.request_id] = None
            if misfits:
                self._requeue(s, misfits, now, "its placement no longer fits the portfolio after a restart", "server")
            for job in s.scalars(select(T.Job).where(T.Job.state == "queued")):
                if job.id not in self.pending:
                    self._enqueue(job.id, job.team, JobSpec.model_validate(job.spec), job.submitted_at, job.attempt)
            for job in s.scalars(select(T.Job).where(T.Job.state.in_(ACTIVE))):
                if job.id not in self.by_job:
                    self._requeue_job(s, job.id, now, "no placement was recorded for it", "server", "lost")
            if self.engine is not None:
                self._schedule(s)
        self.epoch += 1

    # == helpers =============================================================================================
    def _add_active(self, act: Active) -> None:
        self.active[act.request_id] = act
        self.by_placement[act.placement_id] = act
        if act.handle is not None:
            self._handles.setdefault(act.backend, {})[act.placement_id] = act.handle
        self.by_job.setdefault(act.job_id, set()).add(act.request_id)

    def _pop_active(self, request_id: str) -> Active | None:
        act = self.active.pop(request_id, None)
        if act is not None:
            self.by_placement.pop(act.placement_id, None)
            self._handles.get(act.backend, {}).pop(act.placement_id, None)
            rids = self.by_job.get(act.job_id)
            if rids is not None:
                rids.discard(request_id)
                if not rids:
                    del self.by_job[act.job_id]
        return act

    def _event(self, s: Session, actor: str, kind: str, job: T.Job | None, message: str,
               detail: dict | None = None, team: str | None = None) -> None:
        s.add(T.Event(at=self.clock(), actor=actor, kind=kind, team=job.team if job is not None else team,
                      job_id=job.id if job is not None else None, message=message, detail=detail))

    def gauges(self) -> dict[str, float]:
        eng = self.engine
        return {"queued": len(self.pending), "active_placements": len(self.active),
                "gpus_free": sum(cs.domains.free_total for cs in eng.state.clusters) if eng else 0}


def _gpu_hours(h: float) -> str:
    """Lost work as people read it: GPU-hours, or GPU-seconds when under a tenth of a GPU-hour."""
    return f"{h:,.2f} GPU-hours" if h >= 0.1 or h == 0 else f"{h * 3600:,.0f} GPU-seconds"


def _total_gpus(spec: JobSpec) -> int:
    if spec.kind == "inference":
        return spec.gpu_count * sum((spec.replicas or {}).values())
    return spec.gpu_count

