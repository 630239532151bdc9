"""The ledger: what the scheduler did, written as rows and events in the turn's transaction.

It is the live driver's side of the scheduler's hooks. The scheduler calls `started` and `stopped` while it
decides; the ledger keeps them in order and `flush` writes them (placements in one executemany per batch;
a stop closes the placement rows first written in the same turn).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from ..placement.state import ClusterState
from ..scheduling.scheduler import Placed
from ..scheduling.work import Work
from ..store import tables as T
from .dispatch import Active, Dispatch
from .metrics import Metrics

JOBS, PLACEMENTS, EVENTS = T.Job.__table__, T.Placement.__table__, T.Event.__table__
# Core executemany statements for the hot path (one round trip per batch, no ORM bookkeeping)
JOB_PLACED = (update(JOBS).where(JOBS.c.id == bindparam("_id"))
              .values(state="placed", placed_at=bindparam("_at"), attempt=bindparam("_attempt"), reason=None))
JOB_REASON = update(JOBS).where(JOBS.c.id == bindparam("_id")).values(reason=bindparam("_reason"))
JOB_STARTED = (update(JOBS).where(JOBS.c.id == bindparam("_id"), JOBS.c.state == "placed")
               .values(state="running", started_at=bindparam("_at")))
PLACEMENT_HANDLE = update(PLACEMENTS).where(PLACEMENTS.c.id == bindparam("_id")).values(handle=bindparam("_h"))


def job_id(w: Work) -> int:
    return int(w.id)


def gpu_hours_text(h: float) -> str:
    """Lost work as people read it: GPU-hours, or GPU-seconds when under a tenth of a GPU-hour."""
    return f"{h:,.2f} GPU-hours" if h >= 0.1 or h == 0 else f"{h * 3600:,.0f} GPU-seconds"


def event(s: Session, at: float, actor: str, kind: str, job: T.Job | None, message: str,
          detail: dict | None = None, team: str | None = None) -> None:
    s.add(T.Event(at=at, actor=actor, kind=kind, team=job.team if job is not None else team,
                  job_id=job.id if job is not None else None, message=message, detail=detail))


class Ledger:
    """The scheduler's hooks for the live server (see `gpufleet.scheduling.scheduler.Hooks`)."""

    def __init__(self, dispatch: Dispatch, metrics: Metrics):
        self.dispatch = dispatch
        self.metrics = metrics
        self.next_placement_id = 1   # the control loop is the only writer of placements: it numbers them
        self.actor = "scheduler"     # who the next stops are attributed to
        self.ops: list[tuple] = []

    # -- hooks --------------------------------------------------------------------------------------------
    def touch(self, cs: ClusterState, now: float) -> None:
        pass

    def started(self, w: Work, allocs: Placed, now: float) -> None:
        self.ops.append(("placed", w, allocs, now, w.attempt))

    def stopped(self, w: Work, lost_gpu_s: float, why: str, requeued: bool, now: float, cause: str) -> None:
        self.ops.append(("stopped", w, lost_gpu_s, why, requeued, now, cause, self.actor))

    def refused(self, w: Work, reason: str, now: float) -> None:  # the live server holds such work queued
        pass

    # -- writing ------------------------------------------------------------------------------------------
    def flush(self, s: Session, backend_of: Any) -> None:
        ops, self.ops = self.ops, []
        batch: list[tuple] = []
        for op in ops:
            if op[0] == "placed":
                batch.append(op[1:])
                continue
            if batch:
                self._placements(s, batch, backend_of)
                batch = []
            self._stopped(s, *op[1:])
        if batch:
            self._placements(s, batch, backend_of)

    def _placements(self, s: Session, placed: list[tuple], backend_of: Any) -> None:
        rows, events, jobs = [], [], []
        for w, allocs, now, attempt in placed:
            jid, spec = job_id(w), w.tag
            jobs.append({"_id": jid, "_at": now, "_attempt": attempt})
            for a, cost in allocs:
                pid = self.next_placement_id
                self.next_placement_id += 1
                backend = backend_of(a.cluster)
                rows.append({"id": pid, "job_id": jid, "attempt": attempt, "request_id": a.request.id,
                             "cluster": a.cluster, "provider": a.provider, "parts": [list(x) for x in a.parts],
                             "backend": backend, "handle": None, "cost_per_gpu_hour": cost, "placed_at": now,
                             "released_at": None, "outcome": None})
                self.dispatch.add(Active(pid, jid, a.request.id, backend, None, spec, w.team, attempt))
                self.dispatch.to_start[a.request.id] = None
            where = sorted({a.cluster for a, _ in allocs})
            n = sum(a.gpus for a, _ in allocs)
            events.append({"at": now, "actor": "scheduler", "kind": "placed", "team": w.team, "job_id": jid,
                           "message": f"placed on {', '.join(where)} ({n:,} GPU{'s' if n != 1 else ''})",
                           "detail": {"placements": [{"request": a.request.id, "cluster": a.cluster,
                                                      "provider": a.provider, "parts": [list(x) for x in a.parts],
                                                      "cost_per_gpu_hour": c} for a, c in allocs]}})
            self.metrics.submit_to_place.observe(max(0.0, now - w.submit_s))
        s.execute(insert(PLACEMENTS), rows)
        s.execute(JOB_PLACED, jobs)
        s.execute(insert(EVENTS), events)
        self.metrics.placements.inc(len(jobs))

    def close(self, s: Session, jid: int, outcome: str, now: float, stop: bool = True) -> None:
        """Close every open placement of the job and stop its work (after commit)."""
        for rid in sorted(self.dispatch.by_job.get(jid, ())):
            act = self.dispatch.pop(rid)
            if act is None:
                continue
            if stop:
                self.dispatch.stop_later(act)
            s.execute(update(T.Placement).where(T.Placement.id == act.placement_id)
                      .values(released_at=now, outcome=outcome))

    def _stopped(self, s: Session, w: Work, lost_gpu_s: float, why: str, requeued: bool, now: float, cause: str,
                 actor: str) -> None:
        jid = job_id(w)
        self.close(s, jid, why if cause == "stopped" else cause, now)
        if not requeued:
            return
        job = s.get(T.Job, jid)
        if job is None:
            return
        lost = lost_gpu_s / 3600.0
        job.state, job.reason = "queued", w.reason or why   # why it waits now, if tried again already
        job.lost_gpu_hours = (job.lost_gpu_hours or 0.0) + lost
        event(s, now, actor, "requeued", job, f"requeued: {why}; {gpu_hours_text(lost)} since the last checkpoint lost",
              detail={"lost_gpu_hours": lost, "outcome": cause})
        self.metrics.requeues.inc()
