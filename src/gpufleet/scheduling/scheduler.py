"""The scheduler: one queue, one scheduling cycle and one lifecycle around the placement engine.

The simulator drives it on its event loop's time, the live control loop on wall time; both pass `now` in
and hear what happened through `Hooks`. Where the two drivers must differ it is a named `SchedOptions`
field with its reason, never a second implementation.

The cycle: partitions that got new work, or whose clusters freed capacity, are passed over in their
discipline's order (see `queue`). Work is placed all or nothing (a gang is one request, a live inference
job all its replicas); a service with `min_providers` first goes to providers it does not use yet;
single-request work may preempt lower-priority preemptible work (a set may not: giving back its earlier
replicas could not undo the evictions). A pass over a partition whose clusters have no free GPU left stops.
The lifecycle: an interruption (failure, preemption, capacity withdrawn, scale-down) keeps progress up to the
last checkpoint, counts the rest as lost and requeues the work when asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from ..placement.engine import Engine
from ..placement.request import Allocation, Decision, Request
from ..placement.state import ClusterState
from .queue import BLOCKING, ORDER, QUEUES, Partition
from .work import FAILED, FINISHED, QUEUED, RUNNING, Work

Placed = list[tuple[Allocation, float | None]]  # each allocation with its price per GPU-hour when decided


@dataclass
class SetResult:
    placed: list[tuple[Decision, Allocation]] = field(default_factory=list)
    unplaced: list[Decision] = field(default_factory=list)

    @property
    def providers(self) -> set[str]:
        return {a.provider for _, a in self.placed}


class Hooks(Protocol):
    def touch(self, cs: ClusterState, now: float) -> None:
        """Called before GPUs of `cs` are taken or given back (the simulator integrates use up to now)."""

    def started(self, w: Work, allocs: Placed, now: float) -> None: ...

    def stopped(self, w: Work, lost_gpu_s: float, why: str, requeued: bool, now: float, cause: str) -> None: ...

    def refused(self, w: Work, reason: str, now: float) -> None: ...


class NoHooks:
    def touch(self, cs: ClusterState, now: float) -> None:
        pass

    def started(self, w: Work, allocs: Placed, now: float) -> None:
        pass

    def stopped(self, w: Work, lost_gpu_s: float, why: str, requeued: bool, now: float, cause: str) -> None:
        pass

    def refused(self, w: Work, reason: str, now: float) -> None:
        pass


@dataclass
class SchedOptions:
    queue: str = "priority"
    # Work no cluster can ever take: the simulator fails it (its portfolio is fixed for the run); the live
    # server holds it queued with the reason (an operator may load a portfolio or a team that admits it).
    hold_impossible: bool = False
    # Note which waiting work changed its reason (the live server writes it to the job rows for
    # `gpufleet jobs`; the simulator reads no reasons and skips the bookkeeping).
    track_reasons: bool = False

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ValueError(f"unknown queue discipline {self.queue!r}; expected one of {', '.join(QUEUES)}")


class Scheduler:
    def __init__(self, engine: Engine, options: SchedOptions | None = None, hooks: Hooks | None = None):
        self.engine = engine
        self.state = engine.state
        self.opt = options or SchedOptions()
        self.hooks: Hooks = hooks or NoHooks()
        self.order = ORDER[self.opt.queue]
        self.blocking = BLOCKING[self.opt.queue]
        self.backfill = self.opt.queue == "backfill"
        self.partitions: dict[tuple, Partition] = {}
        self.running: dict[str, Work] = {}
        self.owner: dict[str, Work] = {}          # request id -> the running work holding it
        self.queued = 0
        self.freed: set[int] = set()              # clusters that gained free GPUs since the last cycle
        self.spread: dict[str, dict[str, int]] = {}  # spread key -> provider -> running replicas
        self._seq = 0
        self.noted: list[Work] | None = [] if self.opt.track_reasons else None

    # -- the queue ------------------------------------------------------------------------------------
    def _partition(self, w: Work) -> Partition:
        part = self.partitions.get(w.part_key)
        if part is None:
            clusters: set[int] = set()
            for r in w.requests:
                clusters.update(cs.index for cs in self.engine.candidates(r))
            part = self.partitions[w.part_key] = Partition(w.part_key, frozenset(clusters))
        return part

    def submit(self, w: Work, now: float) -> None:
        """New work arrives. Nobody waits for its clusters: it is tried at once, without a pass."""
        w.seq = self._seq
        self._seq += 1
        self.queued += 1
        part = self._partition(w)
        w.state = QUEUED
        if part.entries:
            part.add(w, self.order)
            return
        self.state.now = now
        if self._try(w, now, part) is not None and w.state == QUEUED:
            part.add(w, self.order)
            part.dirty = False  # it was just tried; freed capacity will wake the partition

    def requeue(self, w: Work) -> None:
        if w.seq < 0:
            w.seq = self._seq
            self._seq += 1
        w.state = QUEUED
        self.queued += 1
        self._partition(w).add(w, self.order)

    def withdraw(self, w: Work) -> bool:
        """Take queued work out of the queue (cancelled, or a replica no longer wanted)."""
        if w.state != QUEUED:
            return False
        self._partition(w).remove(w)
        self.queued -= 1
        w.state = FINISHED
        return True

    def waiting(self) -> list[Work]:
        return [e[-1] for part in self.partitions.values() for e in part.entries]

    def wants_cycle(self) -> bool:
        return self.queued > 0 and any(p.entries and (p.dirty or not p.clusters.isdisjoint(self.freed))
                                       for p in self.partitions.values())

    def wake_all(self) -> None:
        """Capacity may have freed anywhere (a new portfolio, a restart): every partition is tried again."""
        for part in self.partitions.values():
            part.dirty = True

    # -- the cycle ------------------------------------------------------------------------------------
    def cycle(self, now: float) -> None:
        """Pass over partitions that got new work or whose clusters freed capacity, until none did (work
        evicted by a preemption is requeued and tried again in the same cycle)."""
        self.state.now = now
        for _ in range(64):
            freed = self.freed
            self.freed = set()
            todo = [p for p in self.partitions.values()
                    if p.entries and (p.dirty or not p.clusters.isdisjoint(freed))]
            if not todo:
                return
            for part in todo:
                part.dirty = False
                self._pass(part, now)

    def _pass(self, part: Partition, now: float) -> None:
        failed: dict[tuple, str] = {}
        reservation: tuple[float, int] | None = None   # backfill: (shadow time, spare GPUs then)
        done = 0
        for e in list(part.entries):
            w: Work = e[-1]
            if w.state != QUEUED:
                continue
            if not self.backfill:
                why = failed.get(w.blocker)
                if why is not None:
                    self._note(w, why)
                    continue
            if reservation is not None and not self._may_backfill(w, reservation, now):
                self._note(w, "waiting behind the reservation of the queue's head (backfill)")
                continue
            why = self._try(w, now, part)
            if why is None:
                done += 1
                if reservation is not None and now + w.work_s / w.best_speed() > reservation[0]:
                    reservation = (reservation[0], reservation[1] - w.gpus)
                continue
            if w.state != QUEUED:   # refused for good
                done += 1
                continue
            failed[w.blocker] = why
            if self.backfill and reservation is None:
                reservation = self._shadow(part, w)
            elif self.blocking and not self.backfill:
                break
            if self._full(part):
                break
            if self.noted is None and not self.backfill and len(failed) >= len(part.blockers):
                break   # every kind of work waiting here has failed: the rest would be skipped (unless reasons are noted)
        if done:
            part.keep([e for e in part.entries if e[-1].state == QUEUED])

    def _full(self, part: Partition) -> bool:
        clusters = self.state.clusters
        return all(clusters[i].free == 0 for i in part.clusters)

    def _try(self, w: Work, now: float, part: Partition) -> str | None:
        """Place `w` now, all or nothing. None when it started; else why not (and `w.reason` says so)."""
        res = self.place_set(w)
        if res.unplaced:
            d = res.unplaced[0]
            why = d.reason or "waiting for capacity"
            if d.permanent and not self.opt.hold_impossible:
                self.queued -= 1
                w.state = FAILED
                w.fail_reason = f"can never be placed: {why}"
                self.hooks.refused(w, w.fail_reason, now)
            self._note(w, why)
            return why
        self._start(w, res.placed, now)
        return None

    def _note(self, w: Work, why: str) -> None:
        if w.reason != why:
            w.reason = why
            if self.noted is not None:
                self.noted.append(w)

    def never_runs(self, w: Work) -> str | None:
        """Why no cluster of the portfolio could ever take `w` (its GPU type, place or topology, or a team
        the quotas do not know), or None: it may have to wait, but it can run. Reads the engine only."""
        for r in w.requests:
            d = self.engine.decide(r, allow_preemption=False)
            if not d.placed and d.permanent:
                return d.reason
        return None

    def place_set(self, w: Work, explain: bool = False, partial: bool = False) -> SetResult:
        """Decide and commit every request of `w`, or none. Victims of a preemption are interrupted and
        requeued before the allocation is committed. `partial` keeps what fits and reports the rest: only
        for showing a what-if (`gpufleet place`), never for scheduling."""
        eng = self.engine
        res = SetResult()
        may_preempt = len(w.requests) == 1
        used = self._spread_of(w)
        for r in w.requests:
            d = self._decide(r, w.min_providers, used, explain, may_preempt)
            if not d.placed:
                res.unplaced.append(d)
                if partial:
                    continue
                for _, a in reversed(res.placed):
                    eng.release(a.request.id)
                res.placed = []
                return res
            if d.victims:
                self._evict(d.victims, w)
            self.hooks.touch(self.state.by_name[d.cluster or ""], self.state.now)
            a = eng.commit(d)
            used.add(a.provider)
            res.placed.append((d, a))
        return res

    def trial(self, w: Work) -> tuple[SetResult, list[Work]]:
        """What submitting `w` now would do, and nothing changed (as `sbatch --test-only`): the waiting work
        its queue tries first, and each request decided with reasons; a request is held only while the
        rest of its set is decided, then all are given back. Preemption victims are named, not evicted.
        Work of the same kind that already waits (the cycle's skip rule), or any waiting work in a blocking
        discipline or on clusters without a free GPU (a pass stops there), keeps `w` waiting behind it: the
        result is then one unplaced decision saying so."""
        part = self.partitions.get(w.part_key)
        w.seq = self._seq
        ahead = [e[-1] for e in part.entries if tuple(e[:-1]) <= self.order(w)] if part else []
        same = next((x for x in ahead if x.blocker == w.blocker), None)
        if same is not None or (part is not None and ahead and (self.blocking or self._full(part))):
            first = same or ahead[0]
            why = f"would wait behind {first.label}" + (f", which waits: {first.reason}" if first.reason else "")
            return SetResult(unplaced=[Decision(w.requests[0], reason=why)]), ahead
        eng, res = self.engine, SetResult()
        may_preempt = len(w.requests) == 1
        used = self._spread_of(w)
        held: list[str] = []
        try:
            for r in w.requests:
                d = self._decide(r, w.min_providers, used, True, may_preempt)
                if not d.placed:
                    res.unplaced.append(d)
                    break
                if d.victims:   # a single request: nothing else to decide, so nothing to commit
                    cs = self.state.by_name[d.cluster or ""]
                    res.placed.append((d, Allocation(r, cs.name, cs.provider, (), self.state.now)))
                    continue
                a = eng.commit(d)
                held.append(r.id)
                used.add(a.provider)
                res.placed.append((d, a))
        finally:
            for rid in reversed(held):
                eng.release(rid)
        return res, ahead

    def _spread_of(self, w: Work) -> set[str]:
        """The providers a `min_providers` service already runs replicas on (empty for other work)."""
        key = w.requests[0].spread_key
        return set(self.spread.get(key, ())) if key is not None and w.min_providers > 1 else set()

    def _decide(self, r: Request, min_providers: int, used: set[str], explain: bool, may_preempt: bool
                ) -> Decision:
        eng = self.engine
        if len(used) < min_providers:   # spread first: a provider this service does not use yet
            base = r.providers
            pool = {c.provider for c in self.state.clusters} if base is None else set(base)
            fresh = frozenset(pool - used)
            if fresh:
                r.providers = fresh
                r.reshape()
                d = eng.decide(r, explain, allow_preemption=may_preempt)
                r.providers = base
                r.reshape()
                if d.placed:
                    return d
        return eng.decide(r, explain, allow_preemption=may_preempt)

    def _evict(self, victims: tuple[str, ...], by: Work) -> None:
        now = self.state.now
        seen: set[int] = set()
        for v in victims:
            victim = self.owner.get(v)
            if victim is not None and id(victim) not in seen:
                seen.add(id(victim))
                self.interrupt(victim, now, requeue=True,
                               why=f"preempted by {by.label} ({by.workload}, priority {by.priority})",
                               cause="preempted")

    def _start(self, w: Work, got: list[tuple[Decision, Allocation]], now: float) -> None:
        self.queued -= 1
        w.state = RUNNING
        w.start_s = now
        w.attempt += 1
        w.reason = None
        speed = math.inf
        for _, a in got:
            self.owner[a.request.id] = w
            cs = self.state.by_name[a.cluster]
            speed = min(speed, a.request.speeds.get(cs.gpu, 1.0))
            key = a.request.spread_key
            if key is not None:
                per = self.spread.setdefault(key, {})
                per[a.provider] = per.get(a.provider, 0) + 1
        w.speed = speed if speed < math.inf else 1.0
        if w.first_start_s is None:
            w.first_start_s = now
        self.running[w.id] = w
        self.hooks.started(w, [(a, d.cost_per_gpu_hour) for d, a in got], now)

    # -- EASY backfill --------------------------------------------------------------------------------
    def _shadow(self, part: Partition, head: Work) -> tuple[float, int]:
        """When the blocked head could start (GPU count, as EASY does), and how many GPUs are spare then."""
        st = self.state
        free = sum(st.clusters[i].free for i in part.clusters)
        ends = sorted((j.start_s + j.work_s / j.speed, j.gpus) for j in self.running.values()
                      if not math.isinf(j.work_s) and j.requests[0].id in st.allocations
                      and st.by_name[st.allocations[j.requests[0].id].cluster].index in part.clusters)
        t = math.inf
        for end, gpus in ends:
            free += gpus
            if free >= head.gpus:
                t = end
                break
        return t, (free - head.gpus) if t < math.inf else 0

    @staticmethod
    def _may_backfill(w: Work, reservation: tuple[float, int], now: float) -> bool:
        shadow, spare = reservation
        return now + w.work_s / w.best_speed() <= shadow or w.gpus <= spare

    # -- the lifecycle --------------------------------------------------------------------------------
    def _release(self, w: Work) -> None:
        st = self.state
        for r in w.requests:
            self.owner.pop(r.id, None)
            held = st.allocations.get(r.id)
            if held is None:
                continue
            cs = st.by_name[held.cluster]
            self.hooks.touch(cs, st.now)
            a = self.engine.release(r.id)
            if a is None:
                continue
            self.freed.add(cs.index)
            key = r.spread_key
            if key is not None:
                per = self.spread[key]
                per[a.provider] -= 1
                if not per[a.provider]:
                    del per[a.provider]
        self.running.pop(w.id, None)

    def release_part(self, w: Work, request_id: str, now: float) -> bool:
        """One request of running work ended by itself (a replica of a live service exited cleanly): its
        GPUs go back, the rest keeps running. True when nothing of `w` is held any more."""
        self.state.now = now
        held = [r for r in w.requests if r.id in self.owner]
        if len(held) <= 1:
            self.finish(w, now)
            return True
        keep, w.requests = w.requests, [r for r in w.requests if r.id == request_id]
        self._release(w)
        w.requests = [r for r in keep if r.id != request_id]
        self.running[w.id] = w
        w.gpus = sum(r.gpus for r in w.requests)
        return False

    def finish(self, w: Work, now: float) -> None:
        """`w` ended by itself: its GPUs go back."""
        self.state.now = now
        self._release(w)
        w.run_gpu_s += (now - w.start_s) * w.gpus
        w.work_s = 0.0
        w.state = FINISHED
        w.finish_s = now

    def interrupt(self, w: Work, now: float, requeue: bool, why: str, cause: str = "lost") -> float:
        """Stop running work at `now`: it keeps its last checkpoint; the rest is lost (GPU-seconds, returned).
        Requeued, it waits with its original submission time and priority. `cause`: lost (failure, capacity
        withdrawn), preempted, or stopped (cancelled, scaled down)."""
        self.state.now = now
        self._release(w)
        lost = w.interrupt(now)
        if requeue:
            self.requeue(w)
            w.reason = why
        else:
            w.state = FINISHED
            w.finish_s = now
        self.hooks.stopped(w, lost, why, requeue, now, cause)
        return lost

    def stop(self, w: Work, now: float, why: str) -> float:
        """Take work away for good (cancelled, scaled down): queued or running."""
        if w.state == QUEUED:
            self.withdraw(w)
            w.finish_s = now
            return 0.0
        if w.state == RUNNING:
            return self.interrupt(w, now, requeue=False, why=why, cause="stopped")
        return 0.0

    def interrupt_requests(self, request_ids: list[str], now: float, why: str) -> list[Work]:
        """Interrupt and requeue the work holding these requests (whole work: every replica of a set)."""
        hit: list[Work] = []
        for rid in request_ids:
            w = self.owner.get(rid)
            if w is not None and w not in hit:
                hit.append(w)
        for w in hit:
            self.interrupt(w, now, requeue=True, why=why)
        return hit

    def fail(self, scope: str, target: str, domain: int | None, now: float, why: str) -> list[Work]:
        """A domain, cluster or provider went down: its work restarts from its last checkpoint elsewhere."""
        eng = self.engine
        if scope == "domain":
            ids = eng.fail_domain(target, domain or 0)
        elif scope == "cluster":
            ids = eng.fail_cluster(target)
        elif scope == "provider":
            ids = eng.fail_provider(target)
        else:
            raise ValueError(f"unknown failure scope {scope!r}")
        return self.interrupt_requests(ids, now, why)

    def repair(self, scope: str, target: str, domain: int | None) -> None:
        eng = self.engine
        if scope == "domain":
            eng.repair_domain(target, domain or 0)
            self.freed.add(self.state.by_name[target].index)
        elif scope == "cluster":
            eng.repair_cluster(target)
            self.freed.add(self.state.by_name[target].index)
        elif scope == "provider":
            eng.repair_provider(target)
            self.freed.update(cs.index for cs in self.state.clusters if cs.provider == target)
        else:
            raise ValueError(f"unknown repair scope {scope!r}")

    def set_time(self, now: float, why: str = "capacity withdrawn") -> list[Work]:
        """Advance the engine's clock (ramps, contract dates); work on domains that ceased is requeued."""
        before = [cs.domains.active for cs in self.state.clusters]
        lost = self.engine.set_time(now)
        for cs, b in zip(self.state.clusters, before):
            if cs.domains.active > b:
                self.freed.add(cs.index)
        return self.interrupt_requests(lost, now, why) if lost else []

    # -- a new engine (live: a changed portfolio or quotas, a restart) ---------------------------------
    def adopt(self, w: Work, placements: list[tuple[Request, str, tuple[tuple[int, int], ...], float]],
              now: float) -> bool:
        """Take back running work recorded earlier (same domains, no decision). False if it no longer fits:
        then nothing of it is held and the caller requeues it."""
        got: list[tuple[Decision, Allocation]] = []
        for req, cluster, parts, started in placements:
            a = self.engine.adopt(req, cluster, parts, started)
            if a is None:
                for _, x in got:
                    self.engine.release(x.request.id)
                return False
            got.append((Decision(req, cluster=cluster), a))
        self.queued += 1  # _start counts it out of the queue
        w.seq = self._seq
        self._seq += 1
        start = min((p[3] for p in placements), default=now)
        hooks, self.hooks = self.hooks, NoHooks()
        try:
            self._start(w, got, start)
        finally:
            self.hooks = hooks
        w.attempt -= 1  # adopting is not a new placement
        return True

    def replace_engine(self, engine: Engine, now: float, why: str) -> list[Work]:
        """Move to a new engine: running work is taken back where it runs; work that no longer fits is
        interrupted and requeued with `why` (and returned). The queue is re-partitioned."""
        old = self.engine
        running = list(self.running.values())
        waiting = self.waiting()
        self.engine, self.state = engine, engine.state
        self.partitions, self.running, self.owner, self.spread = {}, {}, {}, {}
        self.queued, self.freed = 0, set()
        misfits: list[Work] = []
        for w in running:
            placements = []
            for r in w.requests:
                a = old.state.allocations.get(r.id)
                if a is None:
                    break
                placements.append((r, a.cluster, a.parts, a.started_at))
            attempt = w.attempt
            if len(placements) != len(w.requests) or not self.adopt(w, placements, now):
                misfits.append(w)
            w.attempt = attempt
        for w in waiting:
            self.requeue(w)
        for w in misfits:
            self.requeue_lost(w, now, why)
        return misfits

    def requeue_lost(self, w: Work, now: float, why: str) -> float:
        """Work that holds nothing any more (its placement vanished): count what it lost, queue it again."""
        self.running.pop(w.id, None)
        lost = w.interrupt(now)
        self.requeue(w)
        w.reason = why
        self.hooks.stopped(w, lost, why, True, now, "lost")
        return lost
