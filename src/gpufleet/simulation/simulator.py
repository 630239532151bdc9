"""The simulator: replays arrivals, failures, ramps and demand on a portfolio, placing every job with the
placement engine (no second scheduler), and measures waits, use, money and service levels.

Pure: the clock is the event loop's, randomness comes from the `random.Random` passed in, and nothing here
touches a disk or the network. Same seed, same inputs: identical results.
"""

from __future__ import annotations

import gc
import math
import random
from dataclasses import dataclass, field
from typing import Callable

from ..catalog import Catalog, bundled_catalog
from ..model.scenario import Portfolio
from ..placement.engine import Engine
from ..placement.profiles import Profile
from ..placement.state import ClusterState, to_seconds
from .accounting import Accounting
from .failures import Outage, scenario_outages
from .jobs import FAILED, FINISHED, QUEUED, RUNNING, SimJob
from .loop import EventLoop
from .metrics import Metrics
from .queue import BLOCKING, ORDER, QUEUES, Partition
from .results import summarize
from .workloads import Service, Stream, next_run, scenario_streams


@dataclass
class SimOptions:
    queue: str = "priority"
    start_s: float | None = None          # default: the scenario's start
    until_s: float | None = None          # default: the scenario's end
    tick_s: float = 3600.0                # accounting and time-series resolution
    random_failures: bool = True
    outages: list[Outage] = field(default_factory=list)
    scenario_workloads: bool = True
    drain: bool = False                   # keep running past `until` until every job has finished
    progress: Callable[[float], None] | None = None

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ValueError(f"unknown queue discipline {self.queue!r}; expected one of {', '.join(QUEUES)}")


class Simulator:
    def __init__(self, portfolio: Portfolio, profile: str | Profile | None, options: SimOptions,
                 rng: random.Random, catalog: Catalog | None = None):
        self.p = portfolio
        self.opt = options
        self.rng = rng
        self.catalog = (catalog or bundled_catalog()).with_gpus(list(portfolio.scenario.gpu_types))
        self.t0 = options.start_s if options.start_s is not None else to_seconds(portfolio.start)
        self.t_end = options.until_s if options.until_s is not None else to_seconds(portfolio.end)
        self.loop = EventLoop(self.t0)
        self.engine = Engine(portfolio, self.t0, profile)
        self.state = self.engine.state
        self.acc = Accounting(self.state, self.t0)
        self.metrics = Metrics(self.state.providers, [k.name for k in self.state.contracts])
        self.order = ORDER[options.queue]
        self.blocking = BLOCKING[options.queue]
        self.backfill = options.queue == "backfill"
        self.partitions: dict[tuple, Partition] = {}
        self.running: dict[str, SimJob] = {}
        self.queued = 0
        self.freed: set[int] = set()            # clusters that gained free GPUs since the last pass
        self._pass_pending = False
        self._seq = 0
        self._last_tick = self.t0
        self.services: list[Service] = []
        self._replicas: dict[tuple[str, str], list[SimJob]] = {}   # (service, region) -> live replicas
        self._replica_n: dict[tuple[str, str], int] = {}            # replicas ever made, for unique ids
        self._asked: dict[str, int] = {}
        self._inf_mark = self.t0
        self._served: dict[str, int] = {}
        self._finite_running = 0                  # running jobs that will finish by themselves
        self.trace_reports: list[dict] = []

    # -- inputs -------------------------------------------------------------------------------------
    def add_stream(self, stream: Stream) -> None:
        self._pull(stream)

    def add_service(self, svc: Service) -> None:
        self.services.append(svc)
        self._asked.setdefault(svc.name, 0)
        # Demand already in force at the start counts from the start: only its latest level matters.
        before = [d for d in svc.demand if d[0] <= self.t0]
        for t, replicas in before[-1:] + [d for d in svc.demand if d[0] > self.t0]:
            self.loop.at(max(t, self.t0), self._demand, (svc, replicas))

    def _pull(self, stream: Stream) -> None:
        job = next(stream, None)
        if job is not None:
            self.loop.at(job.submit_s, self._arrive, (job, stream))

    # -- arrivals and the queue ---------------------------------------------------------------------
    def _arrive(self, arg: tuple[SimJob, Stream | None]) -> None:
        job, stream = arg
        if stream is not None:
            self._pull(stream)
        self.metrics.jobs += 1
        self.metrics.by_kind[job.kind] += 1
        job.seq = self._seq
        self._seq += 1
        part = self._partition(job)
        if not part.entries:
            # Nobody is waiting for these clusters: try it now, without a scheduling pass.
            self.state.now = self.loop.now
            d = self.engine.decide(job.request)
            if d.placed:
                self.queued += 1
                self._start(job, d)
                return
            if d.permanent:
                self.queued += 1
                job.fail_reason = f"can never be placed: {d.reason}"
                self._fail(job)
                return
            job.state = QUEUED
            self.queued += 1
            part.add(job, self.order)
            part.dirty = False  # it was just tried; freed capacity will wake the partition
            return
        self._enqueue(job)

    def _partition(self, job: SimJob) -> Partition:
        r = job.request
        key = r.shape[:3]
        part = self.partitions.get(key)
        if part is None:
            cands = self.engine.candidates(r)
            part = self.partitions[key] = Partition(key, frozenset(cs.index for cs in cands))
        return part

    def _enqueue(self, job: SimJob) -> None:
        job.state = QUEUED
        self.queued += 1
        self._partition(job).add(job, self.order)
        self._want_pass()

    def _want_pass(self) -> None:
        if self.queued and not self._pass_pending:
            self._pass_pending = True
            self.loop.at(self.loop.now, self._schedule)

    def _schedule(self, _=None) -> None:
        """One scheduling pass over partitions that got new jobs or whose clusters freed capacity."""
        self._pass_pending = False
        self.state.now = self.loop.now
        freed = self.freed
        self.freed = set()
        for part in list(self.partitions.values()):
            if part.entries and (part.dirty or not part.clusters.isdisjoint(freed)):
                part.dirty = False
                self._pass(part)

    def _pass(self, part: Partition) -> None:
        started: list[int] = []
        failed_shapes: set[tuple] = set()
        reservation: tuple[float, int] | None = None   # backfill: (shadow time, spare GPUs then)
        entries = part.entries
        for i, e in enumerate(entries):
            job: SimJob = e[-1]
            shape = job.request.shape
            if shape in failed_shapes and not self.backfill:
                continue
            if reservation is not None and not self._may_backfill(job, reservation):
                continue
            d = self.engine.decide(job.request)
            if d.placed:
                if reservation is not None and self.loop.now + job.work_s / _best_speed(job) > reservation[0]:
                    reservation = (reservation[0], reservation[1] - job.gpus)
                self._start(job, d)
                started.append(i)
                continue
            if d.permanent:
                job.fail_reason = f"can never be placed: {d.reason}"
                self._fail(job)
                started.append(i)
                continue
            failed_shapes.add(shape)
            if self.backfill and reservation is None:
                reservation = self._shadow(part, job)
            elif self.blocking and not self.backfill:
                break
            if self._full(part):
                break
        if started:
            drop = set(started)
            part.entries = [e for i, e in enumerate(entries) if i not in drop]

    def _full(self, part: Partition) -> bool:
        clusters = self.state.clusters
        return all(clusters[i].free == 0 for i in part.clusters)

    # -- EASY backfill --------------------------------------------------------------------------------
    def _shadow(self, part: Partition, head: SimJob) -> tuple[float, int]:
        """When the blocked head could start (GPU count, as EASY does), and how many GPUs are spare then."""
        free = sum(self.state.clusters[i].free for i in part.clusters)
        ends = sorted((j.start_s + j.work_s / j.speed, j.gpus) for j in self.running.values()
                      if self.state.by_name[self.state.allocations[j.id].cluster].index in part.clusters
                      and not math.isinf(j.work_s))
        t = math.inf
        for end, gpus in ends:
            free += gpus
            if free >= head.gpus:
                t = end
                break
        return t, (free - head.gpus) if t < math.inf else 0

    def _may_backfill(self, job: SimJob, reservation: tuple[float, int]) -> bool:
        shadow, spare = reservation
        return self.loop.now + job.work_s / _best_speed(job) <= shadow or job.gpus <= spare

    # -- start, finish, stop --------------------------------------------------------------------------
    def _start(self, job: SimJob, d) -> None:
        now = self.loop.now
        for v in d.victims:
            victim = self.running.get(v)
            if victim is not None:
                self.metrics.preemptions += 1
                self._stop(victim, requeue=True)
        cs = self.state.by_name[d.cluster]
        self.acc.mark(cs, now)
        self.engine.commit(d)
        self.queued -= 1
        job.state = RUNNING
        job.start_s = now
        job.speed = job.request.speeds[cs.gpu]
        if job.first_start_s is None:
            job.first_start_s = now
            self.metrics.started(job)
        self.running[job.id] = job
        if not math.isinf(job.work_s):
            job.end = self.loop.at(now + job.work_s / job.speed, self._finish, job)
            self._finite_running += 1
        if job.kind == "inference":
            self._inference_mark()
            key = job.request.spread_key or job.workload
            self._served[key] = self._served.get(key, 0) + 1

    def _finish(self, job: SimJob) -> None:
        now = self.loop.now
        cs = self._release(job)
        job.end = None  # the finish event held the job; let both go
        job.run_gpu_s += (now - job.start_s) * job.gpus
        job.work_s = 0.0
        job.state = FINISHED
        job.finish_s = now
        self.metrics.done(job, now)
        self.freed.add(cs.index)
        nxt = next_run(job, now)
        if nxt is not None:
            self.loop.at(now, self._arrive, (nxt, None))
        self._want_pass()

    def _release(self, job: SimJob) -> ClusterState:
        cs = self.state.by_name[self.state.allocations[job.id].cluster]
        self.acc.mark(cs, self.loop.now)
        self.engine.release(job.id)
        del self.running[job.id]
        if not math.isinf(job.work_s):
            self._finite_running -= 1
        if job.kind == "inference":
            self._inference_mark()
            key = job.request.spread_key or job.workload
            self._served[key] -= 1
        return cs

    def _stop(self, job: SimJob, requeue: bool) -> None:
        """Interrupt a running job (failure, preemption, scale-down): it keeps its last checkpoint."""
        now = self.loop.now
        self.loop.cancel(job.end)
        job.end = None
        cs = self._release(job)
        self.freed.add(cs.index)
        job.interrupt(now)
        if requeue:
            self._enqueue(job)

    def _fail(self, job: SimJob) -> None:
        self.queued -= 1
        job.state = FAILED
        self.metrics.failed_job(job)

    # -- inference demand -----------------------------------------------------------------------------
    def _inference_mark(self) -> None:
        """Integrate replicas asked and served up to now (called before either changes)."""
        now = self.loop.now
        dt = now - self._inf_mark
        if dt > 0:
            for svc in self.services:
                m = self.metrics
                m.asked_s[svc.name] = m.asked_s.get(svc.name, 0.0) + self._asked[svc.name] * dt
                m.served_s[svc.name] = m.served_s.get(svc.name, 0.0) + self._served.get(svc.name, 0) * dt
        self._inf_mark = now

    def _demand(self, arg: tuple[Service, dict[str, int]]) -> None:
        svc, replicas = arg
        self._inference_mark()
        now = self.loop.now
        self._asked[svc.name] = sum(replicas.values())
        regions = sorted(set(replicas) | {r for (s, r) in self._replicas if s == svc.name})
        for region in regions:
            want = replicas.get(region, 0)
            live = self._replicas.setdefault((svc.name, region), [])
            while len(live) > want:   # scale down: queued replicas first, then the newest running ones
                victim = next((r for r in reversed(live) if r.state == QUEUED), live[-1])
                live.remove(victim)
                if victim.state == QUEUED:
                    self._partition(victim).remove(victim)
                    self.queued -= 1
                else:
                    self._stop(victim, requeue=False)
                victim.state = FINISHED
                victim.finish_s = now
                self.metrics.finished += 1
            while len(live) < want:
                n = self._replica_n.get((svc.name, region), 0)
                self._replica_n[(svc.name, region)] = n + 1
                job = svc.replica(region, n, now)
                live.append(job)
                self._arrive((job, None))

    # -- failures, ramps, contracts -------------------------------------------------------------------
    def _interrupt_all(self, ids: list[str], what: str, kind: str) -> None:
        now = self.loop.now
        self.metrics.failures[kind] += 1
        self.metrics.failure_log.append((now, kind, what, len(ids)))
        for rid in ids:
            job = self.running.get(rid)
            if job is not None:
                self._stop(job, requeue=True)

    def _schedule_domain_failure(self, cs: ClusterState) -> None:
        live = cs.domains.live_domains
        if live <= 0 or cs.spec.domain_mtbf_h <= 0:
            return
        rate = live / (cs.spec.domain_mtbf_h * 3600.0)
        self.loop.at(self.loop.now + self.rng.expovariate(rate), self._domain_fail, cs)

    def _domain_fail(self, cs: ClusterState) -> None:
        dom = cs.domains
        if dom.live_domains > 0:
            d = self.rng.randrange(dom.active)
            while d in dom.down:  # live domains are most of them: a few draws suffice
                d = self.rng.randrange(dom.active)
            self.acc.mark(cs, self.loop.now)
            ids = self.engine.fail_domain(cs.name, d)
            self._interrupt_all(ids, f"{cs.name}#{d}", "domain")
            repair = self.rng.expovariate(1.0 / (cs.spec.repair_h * 3600.0))
            self.loop.at(self.loop.now + repair, self._domain_repair, (cs, d))
        self._schedule_domain_failure(cs)

    def _domain_repair(self, arg: tuple[ClusterState, int]) -> None:
        cs, d = arg
        self.acc.mark(cs, self.loop.now)
        self.engine.repair_domain(cs.name, d)
        self.freed.add(cs.index)
        self._want_pass()

    def _schedule_cluster_failure(self, cs: ClusterState) -> None:
        if cs.spec.cluster_mtbf_h:
            self.loop.at(self.loop.now + self.rng.expovariate(1.0 / (cs.spec.cluster_mtbf_h * 3600.0)),
                         self._cluster_fail, cs)

    def _cluster_fail(self, cs: ClusterState) -> None:
        self.acc.mark(cs, self.loop.now)
        self._interrupt_all(self.engine.fail_cluster(cs.name), cs.name, "cluster")
        repair = self.rng.expovariate(1.0 / (cs.spec.cluster_repair_h * 3600.0))
        self.loop.at(self.loop.now + repair, self._cluster_repair, cs)

    def _cluster_repair(self, cs: ClusterState) -> None:
        self.acc.mark(cs, self.loop.now)
        self.engine.repair_cluster(cs.name)
        self.freed.add(cs.index)
        self._want_pass()
        self._schedule_cluster_failure(cs)

    def _outage_start(self, o: Outage) -> None:
        for cs in self.state.clusters:
            self.acc.mark(cs, self.loop.now)
        if o.kind == "provider":
            ids = self.engine.fail_provider(o.target)
        elif o.kind == "cluster":
            ids = self.engine.fail_cluster(o.target)
        else:
            name, _, d = o.target.partition("#")
            ids = self.engine.fail_domain(name, int(d))
        self._interrupt_all(ids, o.target, f"{o.kind} outage")
        self.loop.at(self.loop.now + o.duration_s, self._outage_end, o)

    def _outage_end(self, o: Outage) -> None:
        for cs in self.state.clusters:
            self.acc.mark(cs, self.loop.now)
        if o.kind == "provider":
            self.engine.repair_provider(o.target)
        elif o.kind == "cluster":
            self.engine.repair_cluster(o.target)
        else:
            name, _, d = o.target.partition("#")
            self.engine.repair_domain(name, int(d))
        self.freed.update(cs.index for cs in self.state.clusters)
        self._want_pass()

    def _ramp(self, _=None) -> None:
        """A ramp step or a contract date: apply capacity levels; work on vanished domains is requeued."""
        now = self.loop.now
        for cs in self.state.clusters:
            self.acc.mark(cs, now)
        before = [cs.domains.active for cs in self.state.clusters]
        lost = self.engine.set_time(now)
        for cs, b in zip(self.state.clusters, before):
            if cs.domains.active > b:
                self.freed.add(cs.index)
                if b == 0 and self.opt.random_failures and self.p.scenario.failures.random:
                    self._schedule_domain_failure(cs)  # its failure process starts with its first domains
        if lost:
            self._interrupt_all(lost, "ramp down", "capacity withdrawn")
        self._want_pass()

    # -- ticks ---------------------------------------------------------------------------------------
    def _tick(self, _=None) -> None:
        now = self.loop.now
        self.state.now = now
        used, cap = self.acc.tick(self._last_tick, now)
        hours = (now - self._last_tick) / 3600.0
        self._last_tick = now
        m = self.metrics
        m.ts_t.append(now)
        for p in self.state.providers:
            m.ts_used[p].append(0.0)
            m.ts_cap[p].append(0.0)
        for cs in self.state.clusters:
            if hours > 0:
                m.ts_used[cs.provider][-1] += used[cs.index] / hours
                m.ts_cap[cs.provider][-1] += cap[cs.index] / hours
        for cls in ("training", "inference", "batch"):
            total = self.state.class_used.get(cls, 0)
            shares = m.ts_share.setdefault(cls, {p: [] for p in self.state.providers})
            for p in self.state.providers:
                shares[p].append(self.state.class_provider_used.get((cls, p), 0) / total if total else 0.0)
        for k in self.state.contracts:
            m.ts_spent[k.name].append(self.acc.spend_by_contract[k.name])
        if self.opt.progress is not None:
            self.opt.progress(min(1.0, (now - self.t0) / max(1.0, self.t_end - self.t0)))
        if now < self.t_end:
            self.loop.at(min(now + self.opt.tick_s, self.t_end), self._tick)

    # -- run -----------------------------------------------------------------------------------------
    def _setup(self) -> None:
        if self.opt.scenario_workloads:
            streams, services = scenario_streams(self.p, self.catalog, self.rng, self.t0, self.t_end)
            for s in streams:
                self.add_stream(s)
            for svc in services:
                self.add_service(svc)
        dates = sorted({to_seconds(d) for c in self.p.clusters.values() for d in c.ramp_dates}
                       | {k.start for k in self.state.contracts} | {k.end for k in self.state.contracts}
                       | {to_seconds(e.start) for k in self.p.contracts for e in getattr(k, "expansions", [])})
        for t in dates:
            if self.t0 < t < self.t_end:
                self.loop.at(t, self._ramp)
        if self.opt.random_failures and self.p.scenario.failures.random:
            for cs in self.state.clusters:
                self._schedule_domain_failure(cs)
                self._schedule_cluster_failure(cs)
        for o in scenario_outages(self.p) + list(self.opt.outages):
            self.loop.at(o.start_s, self._outage_start, o)
        self.loop.at(min(self.t0 + self.opt.tick_s, self.t_end), self._tick)

    def run(self, wall_clock: Callable[[], float] | None = None) -> dict:
        """Run to the end; returns the stable result document (see docs/cli.md). `wall_clock` is only used
        to report how long the run took."""
        w0 = wall_clock() if wall_clock else 0.0
        self._setup()
        # Millions of long-lived jobs and allocations make the cyclic GC's full scans dominate; the run
        # creates no cycles that need collecting in flight, so collect rarely and restore afterwards.
        thresholds = gc.get_threshold()
        gc.set_threshold(200_000, 50, 1_000)
        try:
            self._run_loop()
        finally:
            gc.set_threshold(*thresholds)
        end = max(self.loop.now, self.t_end)
        if end > self._last_tick:
            self.loop.now = end
            self._tick()
        self._inference_mark()
        wall = (wall_clock() - w0) if wall_clock else 0.0
        return summarize(self, end, wall)

    def _run_loop(self) -> None:
        self.loop.run(until=self.t_end)
        if self.opt.drain:
            # Past the horizon: no new arrivals or failures matter, only the work already admitted.
            while (self.queued or self._finite_running) and self.loop.step():
                pass


def _best_speed(job: SimJob) -> float:
    return max(job.request.speeds.values()) if job.request.speeds else 1.0
