"""Rebuilding the control loop's memory: a new engine for a changed portfolio, or everything from the database.

The database is the truth. After a restart (or a transaction that failed) the portfolio, the teams, the
capacity losses, the running placements and the queue are read back; running work is taken back on the very
domains it holds, and work whose placement no longer fits is requeued through the scheduler like any other
interrupted work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..files import parse_scenario
from ..model.job import JobSpec
from ..model.workloads import Team as TeamSpec
from ..placement.engine import Engine
from ..scheduling.scheduler import SchedOptions, Scheduler
from ..store import tables as T
from . import plans
from .dispatch import Active
from .ledger import JOBS, PLACEMENTS

if TYPE_CHECKING:
    from .control import Control

ACTIVE = ("placed", "running")

# The live server's scheduler: the simulator's, holding work no cluster can take yet (see SchedOptions).
LIVE_OPTIONS = SchedOptions(queue="priority", hold_impossible=True, track_reasons=True)


def new_engine(c: Control, s: Session, scenario: Any, now: float) -> Engine:
    """An engine for `scenario` with the teams and open capacity losses the database holds."""
    from ..model.checks import build_portfolio
    teams = [TeamSpec(name=t.name, quota_gpus=t.quota_gpus or 0, cohort=t.cohort,
                      borrowing_limit_gpus=t.borrowing_limit) for t in s.scalars(select(T.Team))]
    portfolio = build_portfolio(scenario.model_copy(update={"teams": teams}), c.catalog)
    engine = Engine(portfolio, now, c.profile)
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
    c.portfolio = portfolio
    return engine


def rebuild(c: Control, s: Session, scenario: Any, now: float, actor: str) -> None:
    """A new engine for a changed portfolio or quotas; running work is taken back where it runs."""
    engine = new_engine(c, s, scenario, now)
    c.burndown.reset()  # contracts may have changed: bill them from the start again
    if c.sched is None:
        c.sched = Scheduler(engine, LIVE_OPTIONS, c.ledger)
    else:
        c.ledger.actor = actor
        c.sched.replace_engine(engine, now, "its cluster left the portfolio or shrank")
        c.ledger.actor = "scheduler"
    plans.reinstall(c, s)   # the newest plan of the portfolio in force, if any
    c.sched.wake_all()


def recover(c: Control) -> None:
    """Read everything back from the database: portfolio, teams, losses, running work, the queue."""
    c.sched = None
    c.portfolio = None
    c.works.clear()
    c.dispatch.clear()
    c.ledger.ops.clear()
    now = c.clock()
    with Session(c.db) as s, s.begin():
        c.next_job_id = (s.scalar(select(func.max(JOBS.c.id))) or 0) + 1
        c.ledger.next_placement_id = (s.scalar(select(func.max(PLACEMENTS.c.id))) or 0) + 1
        latest = s.scalars(select(T.PortfolioVersion).order_by(T.PortfolioVersion.id.desc())).first()
        if latest is not None:
            portfolio = parse_scenario(latest.text, f"portfolio version {latest.id}", c.catalog)
            rebuild(c, s, portfolio.scenario, now, "server")
        _take_back_running(c, s, now)
        for job in s.scalars(select(T.Job).where(T.Job.state == "queued").order_by(T.Job.id)):
            if job.id not in c.works:
                w = c.work_for(job.id, job.team, JobSpec.model_validate(job.spec), job.submitted_at)
                w.attempt = job.attempt
                if c.sched is not None:
                    c.sched.requeue(w)
        if c.sched is not None:
            c.schedule(s, now)


def _take_back_running(c: Control, s: Session, now: float) -> None:
    rows = s.execute(select(T.Placement, T.Job).join(T.Job, T.Job.id == T.Placement.job_id)
                     .where(T.Placement.released_at.is_(None)).order_by(T.Placement.id)).all()
    by_job: dict[int, tuple[T.Job, list[T.Placement]]] = {}
    for pl, job in rows:
        by_job.setdefault(job.id, (job, []))[1].append(pl)
    for jid, (job, pls) in by_job.items():
        spec = JobSpec.model_validate(job.spec)
        for pl in pls:
            c.dispatch.add(Active(pl.id, job.id, pl.request_id, pl.backend, pl.handle, spec, job.team, pl.attempt))
        w = c.work_for(job.id, job.team, spec, job.submitted_at)
        w.attempt = job.attempt
        held = {pl.request_id: pl for pl in pls}
        kept = [r for r in w.requests if r.id in held]   # replicas that ended by themselves are not restored
        if kept and len(kept) < len(w.requests):
            w.requests, w.gpus = kept, sum(r.gpus for r in kept)
        ok = False
        if c.sched is not None and job.state in ACTIVE and all(r.id in held for r in w.requests):
            ok = c.sched.adopt(w, [(r, held[r.id].cluster, tuple((int(d), int(n)) for d, n in held[r.id].parts),
                                    held[r.id].placed_at) for r in w.requests], now)
        if ok:
            for pl in pls:
                if pl.handle is None:
                    c.dispatch.to_start[pl.request_id] = None
        elif c.sched is not None and job.state in ACTIVE:
            w.start_s = min(pl.placed_at for pl in pls)
            c.sched.requeue_lost(w, now, "its placement no longer fits the portfolio after a restart")
        else:
            c.ledger.close(s, jid, "lost", now)
    for job in s.scalars(select(T.Job).where(T.Job.state.in_(ACTIVE))):
        if job.id not in by_job and c.sched is not None:
            w = c.work_for(job.id, job.team, JobSpec.model_validate(job.spec), job.submitted_at)
            w.attempt = job.attempt
            w.start_s = now
            c.sched.requeue_lost(w, now, "no placement was recorded for it")
    c.ledger.flush(s, c.backend_of)
