"""The control loop: one thread that owns the scheduler and every write to the database.

Requests reach it as commands on a queue. Each turn drains a batch of commands, applies them and runs the
scheduling cycle in ONE transaction (group commit: a thousand submissions cost one fsync), then answers the
waiting requests, publishes a snapshot for readers, starts what was placed on its backend, and polls the
backends for exits and lost capacity. The scheduler is the simulator's (`gpufleet.scheduling`) on wall
time; the database is the truth: if a transaction fails, the loop rebuilds its memory from it.

`step()` runs one turn synchronously (no thread): tests and the parity harness drive it with a manual clock.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import Engine as DbEngine
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from ..backends.base import BackendSet, Status
from ..catalog import Catalog, bundled_catalog
from ..files import FileError, parse_scenario
from ..model.job import JobSpec
from ..model.scenario import Portfolio
from ..placement.engine import Engine
from ..scheduling.scheduler import Scheduler
from ..scheduling.translate import job_work
from ..scheduling.work import QUEUED, RUNNING, Work
from ..store import tables as T
from ..store.db import identity
from . import charges, dryrun, history, plans, recovery
from .commands import (
    Cancel,
    Command,
    LoadPortfolio,
    MarkCapacity,
    PutTeam,
    Refused,
    ReserveCharge,
    SettleCharge,
    Submit,
)
from .dispatch import Active, Dispatch
from .holder import Hold, hold
from .ledger import EVENTS, JOB_REASON, JOB_STARTED, JOBS, PLACEMENT_HANDLE, Ledger, event
from .metrics import Metrics
from .snapshot import Snapshot, publish
from .spend import BurnDown

log = logging.getLogger("gpufleet.control")

DONE = ("succeeded", "failed", "cancelled")
__all__ = ["Control", "Refused", "Command", "Submit", "Cancel", "LoadPortfolio", "PutTeam", "MarkCapacity",
           "ReserveCharge", "SettleCharge"]


def job_of(request_id: str) -> int:
    return int(request_id.split("/", 1)[0])


def total_gpus(spec: JobSpec) -> int:
    if spec.kind == "inference":
        return spec.gpu_count * sum((spec.replicas or {}).values())
    return spec.gpu_count


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
        self.batch_max = batch_max
        self.spend_every_s = spend_every_s
        self.inbox: queue.Queue[Command | None] = queue.Queue()
        self.portfolio: Portfolio | None = None
        self.sched: Scheduler | None = None
        self.dispatch = Dispatch(backends, self.data_dir, clock, down_after)
        self.ledger = Ledger(self.dispatch, self.metrics)
        self.works: dict[int, Work] = {}     # job id -> its work, queued or running
        self.next_job_id = 1                 # this loop is the only writer of jobs: it numbers them
        self.burndown = BurnDown()
        self.samples = history.Sampler()     # the fleet over time, for the dashboard
        self.snapshot: Snapshot = publish(self)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.ready = threading.Event()
        self.holder: Hold | None = None      # this server's hold on its database (set early by `serve`)

    @property
    def engine(self) -> Engine | None:
        return self.sched.engine if self.sched is not None else None

    # == lifecycle ===========================================================================================
    def start(self, scenario_text: str | None = None, scenario_source: str = "<scenario>",
              thread: bool = True) -> None:
        if self.holder is None:
            self.holder = hold(self.db)  # HeldElsewhere: another live server runs on this database
        try:
            self.dispatch.instance = identity(self.db) or ""
            self._start(scenario_text, scenario_source, thread)
        except BaseException:
            self.holder.release()
            self.holder = None
            raise

    def _start(self, scenario_text: str | None, scenario_source: str, thread: bool) -> None:
        recovery.recover(self)
        if scenario_text is not None:
            with Session(self.db) as s, s.begin():
                latest = s.scalars(select(T.PortfolioVersion).order_by(T.PortfolioVersion.id.desc())).first()
                if latest is None or latest.text != scenario_text:
                    self._load_portfolio(s, LoadPortfolio("server", scenario_text, scenario_source))
                    self.schedule(s, self.clock())
        self.snapshot = publish(self)
        if thread:
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
        if self.holder is not None:
            self.holder.release()
            self.holder = None

    def submit(self, cmd: Command) -> Any:
        if self._stopping.is_set():
            cmd.future.set_exception(Refused("the server is shutting down", 503))
        else:
            self.inbox.put(cmd)
        return cmd.future

    def step(self, poll: bool = True) -> None:
        """One turn, synchronously: apply queued commands and schedule, poll the backends, start and stop
        work. For a loop started with `thread=False` (tests, the parity harness)."""
        cmds = self._drain(0.0)
        self._turn(cmds)
        if poll:
            self._poll()
        self.dispatch.launch(self.engine)
        if self.dispatch.started or self.dispatch.refused:
            self._turn([])

    # == the loop ============================================================================================
    def _run(self) -> None:
        next_poll = 0.0
        while not self._stopping.is_set():
            wait = 0.0 if self.dispatch.busy else max(0.0, next_poll - time.monotonic())
            cmds = self._drain(wait)
            try:
                if cmds or self.dispatch.started or self.dispatch.refused:
                    self._turn(cmds)
                if time.monotonic() >= next_poll:
                    self._poll()
                    next_poll = time.monotonic() + self.poll_s
                if self.dispatch.to_start or self.dispatch.to_cancel:
                    self.dispatch.launch(self.engine)
            except Exception:  # the database or a backend failed in a way not handled below
                log.exception("control loop turn failed; reloading state from the database")
                for c in cmds:  # the details are in the log; the client learns only that it may retry
                    if not c.future.done():
                        c.future.set_exception(Refused("the server could not record this; try again", 503))
                try:
                    recovery.recover(self)
                    self.snapshot = publish(self)
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
        now = self.clock()
        with Session(self.db, expire_on_commit=False) as s, s.begin():
            self._flush_started(s, now)
            submits = [c for c in cmds if isinstance(c, Submit)]
            if submits:
                results += self._submit(s, submits, now)
            for c in cmds:
                if isinstance(c, Submit):
                    continue
                try:
                    with s.begin_nested():
                        results.append((c, self._apply(s, c), None))
                except Refused as e:  # refused before it changed anything
                    results.append((c, None, e))
            self.schedule(s, now)
        self.snapshot = publish(self)
        for c, value, exc in results:
            if exc is not None:
                c.future.set_exception(exc)
            else:
                c.future.set_result(value)

    # == scheduling ==========================================================================================
    def work_for(self, jid: int, team: str, spec: JobSpec, submitted_at: float) -> Work:
        w = job_work(spec, self.catalog, submitted_at, prefix=str(jid), tag=spec, label=f"job {jid}")
        self.works[jid] = w
        return w

    def schedule(self, s: Session, now: float) -> None:
        """The scheduler's cycle at `now`, and what it did written down (placements, requeues, reasons)."""
        sched = self.sched
        if sched is not None:
            sched.set_time(now, "capacity withdrawn (ramp down)")
            sched.cycle(now)
        self.ledger.flush(s, self.backend_of)
        if sched is not None:
            noted, sched.noted = sched.noted or [], []
            changed = {int(w.id): w.reason for w in noted if w.state == QUEUED}
            if changed:  # why each job waits, written only when it changes
                s.flush()
                s.execute(JOB_REASON, [{"_id": k, "_reason": v} for k, v in changed.items()])
        self.samples.record(s, self, now)

    def backend_of(self, cluster: str) -> str:
        eng = self.engine
        spec = eng.state.by_name[cluster].spec if eng is not None else None
        return self.dispatch.backend_of(spec.backend if spec is not None else None)

    # == commands ============================================================================================
    def _submit(self, s: Session, cmds: list[Submit], now: float) -> list[tuple[Command, Any, BaseException | None]]:
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
        fresh: list[Work] = []
        created = duplicates = 0
        for c in cmds:
            ref = (c.team, c.key) if c.key else None
            known = existing.get(ref) or batch_keys.get(ref) if ref else None
            if known is not None:
                out.append((c, {"id": known, "created": False}, None))
                duplicates += 1
                continue
            jid = self.next_job_id
            at = c.arrived if c.arrived is not None else now
            try:  # a job the engine cannot even express is refused alone, not with its whole batch
                w = job_work(c.spec, self.catalog, at, prefix=str(jid), tag=c.spec, label=f"job {jid}")
            except (ValueError, KeyError) as e:
                out.append((c, None, Refused(f"job: {e}", 422)))
                continue
            never = self.sched.never_runs(w) if self.sched is not None else None
            if never is not None:   # inadmissible (as Slurm's sbatch and Kueue refuse it): nothing is stored
                out.append((c, None, Refused(f"job {c.spec.name!r} can never run on this portfolio: {never}", 422)))
                continue
            self.next_job_id += 1
            if ref:
                batch_keys[ref] = jid
            spec, gpus = c.spec, total_gpus(c.spec)
            rows.append({"id": jid, "team": c.team, "key": c.key, "name": spec.name, "kind": spec.kind, "gpus": gpus,
                         "priority": spec.effective_priority, "spec": spec.model_dump(mode="json", exclude_defaults=True),
                         "state": "queued", "reason": None, "submitted_at": at, "placed_at": None,
                         "started_at": None, "finished_at": None, "attempt": 0, "exit_code": None,
                         "lost_gpu_hours": 0.0, "cancel_requested": False})
            events.append({"at": now, "actor": c.actor, "kind": "submitted", "team": c.team, "job_id": jid,
                           "message": f"{spec.kind} job {spec.name!r} submitted ({gpus:,} GPU{'s' if gpus != 1 else ''})",
                           "detail": {"key": c.key} if c.key else None})
            self.works[jid] = w
            fresh.append(w)
            out.append((c, {"id": jid, "created": True}, None))
            created += 1
        if rows:
            s.execute(insert(JOBS), rows)
            s.execute(insert(EVENTS), events)
        if self.sched is not None:
            self.sched.set_time(now, "capacity withdrawn (ramp down)")
            for w in fresh:
                self.sched.submit(w, now)
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
            return self.mark_capacity(s, c)
        if isinstance(c, ReserveCharge):
            return charges.reserve(s, c, self._need_engine(), self.backends, self.clock())
        if isinstance(c, dryrun.DryRun):
            return dryrun.answer(self, c, self.clock())
        if isinstance(c, plans.InstallPlan):
            return plans.install(self, s, c, self.clock())
        if isinstance(c, SettleCharge):
            answer, moved = charges.settle(s, c, self.backends, self._event)
            if moved:
                self.burndown.read_at = 0.0  # the burn-down moved: refresh it at the next poll
            return answer
        raise Refused(f"unknown command {type(c).__name__}")

    def _cancel(self, s: Session, c: Cancel) -> dict:
        job = s.get(T.Job, c.job_id)
        if job is None or (c.team is not None and job.team != c.team):
            raise Refused(f"no job {c.job_id}", 404)
        if job.state in DONE:
            return {"id": job.id, "state": job.state}
        now = self.clock()
        self._end(s, job, "cancelled", None, now, f"cancelled by {c.actor}")
        self._event(s, c.actor, "cancelled", job, f"job {job.name!r} cancelled")
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
        fresh = self.sched is None
        recovery.rebuild(self, s, portfolio.scenario, now, c.actor)
        if fresh:  # the first portfolio: jobs submitted before it join the queue
            for w in self.works.values():
                if w.state not in (QUEUED, RUNNING):
                    self.sched.requeue(w)  # type: ignore[union-attr]
        self._event(s, c.actor, "portfolio", None,
                    f"portfolio {portfolio.scenario.name!r} loaded: {len(portfolio.clusters)} clusters, "
                    f"{len(portfolio.contracts)} contracts")
        self._mark_inadmissible(s, c.actor, portfolio.scenario.name)
        return {"name": portfolio.scenario.name, "clusters": len(portfolio.clusters)}

    def _mark_inadmissible(self, s: Session, actor: str, name: str) -> None:
        """Queued work the new portfolio can never run stays queued (a later portfolio may take it), its
        reason says why, and the audit log says so once."""
        sched = self.sched
        if sched is None:
            return
        for jid, w in self.works.items():
            never = sched.never_runs(w) if w.state == QUEUED else None
            if never is not None:
                self._event(s, actor, "inadmissible", s.get(T.Job, jid),
                            f"job {jid} can never run on portfolio {name!r}: {never}", team=w.team)

    def _put_team(self, s: Session, c: PutTeam) -> dict:
        now = self.clock()
        row = s.get(T.Team, c.name)
        if row is None:
            row = T.Team(name=c.name, created_at=now)
            s.add(row)
        row.quota_gpus, row.cohort, row.borrowing_limit = c.quota_gpus, c.cohort, c.borrowing_limit
        s.flush()
        if self.portfolio is not None:
            recovery.rebuild(self, s, self.portfolio.scenario, now, c.actor)
        self._event(s, c.actor, "team", None, f"team {c.name!r}: quota {c.quota_gpus:,} GPUs", team=c.name)
        return {"name": c.name, "quota_gpus": c.quota_gpus, "cohort": c.cohort, "borrowing_limit": c.borrowing_limit}

    def mark_capacity(self, s: Session, c: MarkCapacity) -> dict:
        eng = self._need_engine()
        sched = self.sched
        assert sched is not None
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
        what = f"{c.scope} {c.target}" + (f" domain {c.domain}" if c.domain is not None else "")
        hit: list[Work] = []
        if c.failed:
            self.ledger.actor = c.actor
            try:
                hit = sched.fail(c.scope, c.target, c.domain, now, f"{what} failed")
            finally:
                self.ledger.actor = "scheduler"
            s.add(T.CapacityLoss(scope=c.scope, target=c.target, domain=c.domain, reason=c.reason or "marked failed",
                                 failed_at=now))
            self._event(s, c.actor, "capacity_lost", None, f"{what} failed: {c.reason or 'marked failed'}",
                        detail={"scope": c.scope, "target": c.target, "domain": c.domain,
                                "jobs": sorted(int(w.id) for w in hit)})
        else:
            sched.repair(c.scope, c.target, c.domain)
            q = update(T.CapacityLoss).where(T.CapacityLoss.scope == c.scope, T.CapacityLoss.target == c.target,
                                             T.CapacityLoss.repaired_at.is_(None))
            if c.domain is not None:
                q = q.where(T.CapacityLoss.domain == c.domain)
            s.execute(q.values(repaired_at=now))
            self._event(s, c.actor, "capacity_repaired", None, f"{c.scope} {c.target} back in service",
                        detail={"scope": c.scope, "target": c.target, "domain": c.domain})
        self.ledger.flush(s, self.backend_of)
        return {"scope": c.scope, "target": c.target, "failed": c.failed,
                "requeued": sorted(int(w.id) for w in hit)}

    def seller(self, name: str) -> Any:
        return charges.seller(self.backends, name)

    def _need_engine(self) -> Engine:
        if self.engine is None:
            raise Refused("no portfolio is loaded yet: load a scenario first (PUT /v1/portfolio)", 409)
        return self.engine

    # == the end of a job ====================================================================================
    def _end(self, s: Session, job: T.Job, state: str, code: int | None, now: float, why: str | None) -> None:
        """A job is over (succeeded, failed, cancelled): whatever of it still runs or waits is taken away."""
        w = self.works.pop(job.id, None)
        if w is not None and self.sched is not None:
            self.sched.stop(w, now, "cancelled" if state == "cancelled" else "stopped")
        self.ledger.flush(s, self.backend_of)
        self.ledger.close(s, job.id, "cancelled" if state == "cancelled" else "stopped", now)
        job.state, job.exit_code, job.finished_at, job.reason = state, code, now, why
        self.metrics.finished.labels(state).inc()

    def _finish(self, s: Session, job_id: int, state: str, code: int | None, now: float, why: str | None) -> None:
        job = s.get(T.Job, job_id)
        if job is None or job.state in DONE:
            return
        self._end(s, job, state, code, now, why)
        self._event(s, "scheduler", state, job, f"job {job.name!r} {state}" + (f": {why}" if why else ""),
                    detail={"exit_code": code})

    def _placement_done(self, s: Session, act: Active, st: Status, now: float) -> None:
        s.execute(update(T.Placement).where(T.Placement.id == act.placement_id)
                  .values(released_at=now, outcome=st.state))
        self.dispatch.pop(act.request_id)
        w = self.works.get(act.job_id)
        if st.state == "failed":  # one replica or rank failing fails the job: the rest is stopped
            self._finish(s, act.job_id, "failed", st.exit_code, now, st.message or f"exit status {st.exit_code}")
            return
        if w is None or self.sched is None or self.sched.release_part(w, act.request_id, now):
            self.works.pop(act.job_id, None)
            self._finish(s, act.job_id, "succeeded", st.exit_code, now, None)

    # == backends ============================================================================================
    def _flush_started(self, s: Session, now: float) -> None:
        """Write what the dispatcher did since the last turn: handles, running states, start events; act on
        refused starts."""
        started, self.dispatch.started = self.dispatch.started, []
        if started:
            s.execute(PLACEMENT_HANDLE, [{"_id": a.placement_id, "_h": a.handle} for a, _ in started])
            s.execute(JOB_STARTED, [{"_id": a.job_id, "_at": at} for a, at in started])
            s.execute(insert(EVENTS), [{"at": at, "actor": "scheduler", "kind": "started", "team": a.team,
                                        "job_id": a.job_id, "message": f"started on {a.backend} ({a.launch.cluster})"
                                        if a.launch else f"started on {a.backend}", "detail": {"request": a.request_id}}
                                       for a, at in started])
        refused, self.dispatch.refused = self.dispatch.refused, []
        for act, why, unavailable in refused:
            if act.request_id not in self.dispatch.active:
                continue
            if unavailable:
                self._backend_lost(s, act.backend, why)
            else:
                self._finish(s, act.job_id, "failed", None, now, f"the backend refused it: {why}")

    def _poll(self) -> None:
        """Ask each backend how its work is doing and what capacity it lost; act on the answers."""
        if self.engine is None:
            return
        now = self.clock()
        if now - self.burndown.read_at >= self.spend_every_s:
            self._refresh_spend(now)
        res = self.dispatch.poll()
        if not res and not (self.sched is not None and self.sched.wants_cycle()):
            if self.sched is not None:
                before = len(self.ledger.ops)
                self.sched.set_time(now, "capacity withdrawn (ramp down)")
                if len(self.ledger.ops) == before and not self.sched.wants_cycle() \
                        and not self.samples.due(now):
                    return
            else:
                return
        owner = {pid: self.dispatch.by_placement[pid] for pid in res.changed if pid in self.dispatch.by_placement}
        with Session(self.db) as s, s.begin():
            self._flush_started(s, now)
            for name, why in res.unreachable:
                if why:
                    self._backend_lost(s, name, why)
                else:
                    self._backend_back(s, name)
            for name, loss in res.losses:
                self._backend_loss(s, name, loss)
            for pid, st in res.changed.items():
                act = owner.get(pid)
                if act is None or act.request_id not in self.dispatch.active:
                    continue
                if st.state == "lost" and self.sched is not None:
                    self.ledger.actor = f"backend:{act.backend}"
                    self.sched.interrupt_requests([act.request_id], now,
                                                  f"its work on {act.backend} vanished: {st.message}")
                    self.ledger.actor = "scheduler"
                    self.ledger.flush(s, self.backend_of)
                else:
                    self._placement_done(s, act, st, now)
            self.schedule(s, now)
        self.snapshot = publish(self)

    def _backend_loss(self, s: Session, name: str, loss: Any) -> None:
        eng = self._need_engine()
        if loss.cluster not in eng.state.by_name:
            log.warning("backend %s reported capacity lost on %r, which is not in the portfolio", name, loss.cluster)
            return
        scope = "cluster" if loss.domain is None else "domain"
        try:
            with s.begin_nested():
                self.mark_capacity(s, MarkCapacity(f"backend:{name}", scope, loss.cluster, loss.domain,
                                                   reason=loss.reason or "reported by the backend"))
        except Refused as e:  # the backend and the portfolio disagree (a domain the cluster lacks)
            log.warning("backend %s reported a loss gpufleet cannot apply: %s (%s)", name, e, loss.reason)

    def _backend_lost(self, s: Session, name: str, why: str) -> None:
        """A backend stopped answering: every cluster it serves is lost until it answers again."""
        eng = self._need_engine()
        self.dispatch.mark_down(name)
        for cs in eng.state.clusters:
            if self.dispatch.backend_of(cs.spec.backend) == name and cs.up:
                self.mark_capacity(s, MarkCapacity(f"backend:{name}", "cluster", cs.name,
                                                   reason=f"backend {name} unreachable: {why}"))

    def _backend_back(self, s: Session, name: str) -> None:
        eng = self._need_engine()
        self.dispatch.mark_up(name)
        for cs in eng.state.clusters:
            if self.dispatch.backend_of(cs.spec.backend) == name and not cs.up:
                self.mark_capacity(s, MarkCapacity(f"backend:{name}", "cluster", cs.name, failed=False,
                                                   reason=f"backend {name} answers again"))

    def _refresh_spend(self, now: float) -> None:
        eng, portfolio = self.engine, self.portfolio
        if eng is None or portfolio is None:
            return
        try:
            with Session(self.db) as s:
                self.burndown.refresh(s, portfolio, eng.state, now)
        except Exception:  # keep the last burn-down; try again at the next refresh
            self.burndown.read_at = now
            log.exception("could not read the spend commitments' burn-down back")

    # == helpers =============================================================================================
    def _event(self, s: Session, actor: str, kind: str, job: T.Job | None, message: str,
               detail: dict | None = None, team: str | None = None) -> None:
        event(s, self.clock(), actor, kind, job, message, detail, team)

    def gauges(self) -> dict[str, float]:
        return self.snapshot.gauges
