"""The simulator: replays arrivals, failures, ramps and demand on a portfolio, scheduling every job with
the one scheduler (`gpufleet.scheduling`, the live server's too), and measures waits, use, money and service levels.

Pure: the clock is the event loop's, randomness comes from the `random.Random` passed in, and nothing here
touches a disk or the network. Same seed, same inputs: identical results.
"""

from __future__ import annotations

import gc
import math
import random
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..catalog import Catalog, bundled_catalog
from ..model.scenario import Portfolio
from ..placement.engine import Engine
from ..placement.guide import Guide
from ..placement.profiles import Profile
from ..placement.state import ClusterState, to_seconds
from ..scheduling.queue import DEFAULT_QUEUE, QUEUES
from ..scheduling.scheduler import SchedOptions, Scheduler
from ..scheduling.services import ServiceRegion
from ..scheduling.translate import Service, Stream, next_run, scenario_streams
from ..scheduling.work import FINISHED
from ..scheduling.work import Work as SimJob
from .accounting import Accounting
from .failures import Outage, scenario_outages
from .loop import EventLoop
from .metrics import Metrics
from .results import summarize


class Planner(Protocol):
    """What re-plans the run (planning.guidance.Replanner): when, and the guide for a time."""

    def times(self, start_s: float) -> list[float]: ...

    def plan(self, now_s: float) -> Guide | None: ...

    log: list[dict]    # one entry per plan made: when, horizon, status, objective


@dataclass
class SimOptions:
    queue: str = DEFAULT_QUEUE
    start_s: float | None = None          # default: the scenario's start
    until_s: float | None = None          # default: the scenario's end
    tick_s: float = 3600.0                # accounting and time-series resolution
    random_failures: bool = True
    outages: list[Outage] = field(default_factory=list)
    scenario_workloads: bool = True
    drain: bool = False                   # keep running past `until` until every job has finished
    progress: Callable[[float], None] | None = None
    planner: Planner | None = None        # re-plan on its schedule; the `plan` profile follows the guide

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ValueError(f"unknown queue discipline {self.queue!r}; expected one of {', '.join(QUEUES)}")


class Simulator:
    """The scheduler (gpufleet.scheduling) driven on the event loop's time; this class keeps the books."""

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
        self.sched = Scheduler(self.engine, SchedOptions(queue=options.queue), self)
        self.acc = Accounting(self.state, self.t0)
        self.metrics = Metrics(self.state.providers, [k.name for k in self.state.contracts])
        self._pass_pending = False
        self._last_tick = self.t0
        self.services: list[Service] = []
        self._services: dict[str, Service] = {}
        self._regions: dict[tuple[str, str], ServiceRegion] = {}     # (service, region) -> its replicas
        self._svc_regions: dict[str, list[ServiceRegion]] = {}
        self._unsized: set[tuple[str, str]] = set()                   # regions whose replicas changed
        self._inf_mark = self.t0
        self._finite_running = 0                  # running jobs that will finish by themselves
        self.trace_reports: list[dict] = []
        self.started_log: list[tuple[float, str, tuple[str, ...]]] = []  # (t, work, clusters): parity checks
        self.keep_log = False
        # trace work: the GPU models it allowed -> the GPU type it first ran on -> jobs
        self.trace_ran: dict[str, dict[str, int]] = {}

    @property
    def running(self) -> dict[str, SimJob]:
        return self.sched.running

    @property
    def queued(self) -> int:
        return self.sched.queued

    # -- inputs -------------------------------------------------------------------------------------
    def add_stream(self, stream: Stream) -> None:
        self._pull(stream)

    def add_service(self, svc: Service) -> None:
        self.services.append(svc)
        self._services[svc.name] = svc
        self._svc_regions.setdefault(svc.name, [])
        # Demand already in force at the start counts from the start: only its latest level matters.
        before = [d for d in svc.demand if d[0] <= self.t0]
        for t, replicas in before[-1:] + [d for d in svc.demand if d[0] > self.t0]:
            self.loop.at(max(t, self.t0), self._demand, (svc, replicas))

    def _pull(self, stream: Stream) -> None:
        job = next(stream, None)
        if job is not None:
            self.loop.at(job.submit_s, self._arrive, (job, stream))

    # -- arrivals and the scheduling cycle -------------------------------------------------------------
    def _arrive(self, arg: tuple[SimJob, Stream | None]) -> None:
        job, stream = arg
        if stream is not None:
            self._pull(stream)
        self.metrics.jobs += 1
        self.metrics.by_kind[job.kind] += 1
        self.sched.submit(job, self.loop.now)
        self._want_pass()

    def _want_pass(self) -> None:
        if self.sched.queued and not self._pass_pending:
            self._pass_pending = True
            self.loop.at(self.loop.now, self._schedule)

    def _schedule(self, _=None) -> None:
        self._pass_pending = False
        self.sched.cycle(self.loop.now)
        if self._unsized:
            self._resize()

    # -- the scheduler's hooks: use, start, stop, refuse -----------------------------------------------
    def touch(self, cs: ClusterState, now: float) -> None:
        self.acc.mark(cs, now)

    def started(self, job: SimJob, allocs: list, now: float) -> None:
        if job.restarts == 0:
            self.metrics.started(job)
            if job.workload == "trace":
                asked = "|".join(sorted(job.request.speeds))
                ran = self.state.by_name[allocs[0][0].cluster].gpu
                per = self.trace_ran.setdefault(asked, {})
                per[ran] = per.get(ran, 0) + 1
        if self.keep_log:
            self.started_log.append((now, job.id, tuple(a.cluster for a, _ in allocs)))
        if not math.isinf(job.work_s):
            job.end = self.loop.at(now + job.work_s / job.speed, self._finish, job)
            self._finite_running += 1
        if job.kind == "inference":
            self._replica_changed(job, started=True)

    def stopped(self, job: SimJob, lost_gpu_s: float, why: str, requeued: bool, now: float, cause: str) -> None:
        if job.end is not None:
            self.loop.cancel(job.end)
            job.end = None
            self._finite_running -= 1
        if job.kind == "inference":
            self._replica_changed(job)
        if cause == "preempted":
            self.metrics.preemptions += 1
        if requeued:
            self._want_pass()

    def refused(self, job: SimJob, reason: str, now: float) -> None:
        self.metrics.failed_job(job)

    def _finish(self, job: SimJob) -> None:
        now = self.loop.now
        job.end = None  # the finish event held the job; let both go
        self._finite_running -= 1
        if job.kind == "inference":
            self._replica_changed(job)
        self.sched.finish(job, now)
        self.metrics.done(job, now)
        nxt = next_run(job, now)
        if nxt is not None:
            self.loop.at(now, self._arrive, (nxt, None))
        self._want_pass()

    # -- inference demand -----------------------------------------------------------------------------
    def _inference_mark(self, changed: ServiceRegion | None = None, moved: float = 0.0) -> None:
        """Integrate reference replicas asked and served up to now, at the state in force since the last
        mark. Called before a demand changes, and from the scheduler's hooks, which come just after a
        replica started or stopped: that region (`changed`, whose running replicas just moved by `moved`
        reference replicas) is counted as it was before. Only the first change at a time integrates."""
        now = self.loop.now
        dt = now - self._inf_mark
        if dt > 0:
            m = self.metrics
            for svc in self.services:
                regions = self._svc_regions[svc.name]
                served = 0.0
                for r in regions:
                    served += min(r.want, r.capacity() - moved) if r is changed else r.served()
                m.asked_s[svc.name] = m.asked_s.get(svc.name, 0.0) + sum(r.want for r in regions) * dt
                m.served_s[svc.name] = m.served_s.get(svc.name, 0.0) + served * dt
        self._inf_mark = now

    def _replica_changed(self, job: SimJob, started: bool = False) -> None:
        key = (job.workload, next(iter(job.request.regions or ("",))))   # a replica names its one region
        region = self._regions.get(key)
        self._inference_mark(region, job.speed if started else -job.speed)
        if region is not None:
            if started:
                region.started(job)
            self._unsized.add(key)

    def _demand(self, arg: tuple[Service, dict[str, int]]) -> None:
        svc, replicas = arg
        self._inference_mark()
        for name in sorted(set(replicas) | {r for (s, r) in self._regions if s == svc.name}):
            region = self._regions.get((svc.name, name))
            if region is None:
                region = self._regions[(svc.name, name)] = ServiceRegion(svc.speeds)
                self._svc_regions[svc.name].append(region)
            region.want = float(replicas.get(name, 0))
            self._unsized.add((svc.name, name))
        self._resize()

    def _resize(self) -> None:
        """Queue or stop replicas so each changed region serves its demand (services.py)."""
        now = self.loop.now
        by_name = self._services
        for _ in range(64):  # replicas placed at once on arrival change their region again: until settled
            if not self._unsized:
                break
            keys = sorted(self._unsized)
            self._unsized.clear()
            for key in keys:
                self._resize_one(key, by_name[key[0]], now)
        self._want_pass()

    def _resize_one(self, key: tuple[str, str], svc: Service, now: float) -> None:
        region = self._regions[key]
        change = region.reconcile()
        if change.stop:
            self._inference_mark()
        for victim in change.stop:
            self.sched.stop(victim, now, "demand dropped")
            victim.state = FINISHED
            victim.finish_s = now
            self.metrics.finished += 1
        region.forget(change.stop)
        for _ in range(change.add):
            job = svc.replica(key[1], region.made, now)
            region.made += 1
            region.live.append(job)
            self._arrive((job, None))

    # -- failures, ramps, contracts -------------------------------------------------------------------
    def _fail(self, scope: str, target: str, domain: int | None, what: str, kind: str) -> None:
        """Dispatch a failure through the scheduler: its work restarts from the last checkpoint elsewhere."""
        now = self.loop.now
        for cs in self._scope(scope, target):
            self.acc.mark(cs, now)
        hit = self.sched.fail(scope, target, domain, now, f"{what} failed")
        self.metrics.failures[kind] += 1
        self.metrics.failure_log.append((now, kind, what, sum(len(w.requests) for w in hit)))

    def _repair(self, scope: str, target: str, domain: int | None) -> None:
        now = self.loop.now
        for cs in self._scope(scope, target):
            self.acc.mark(cs, now)
        self.sched.repair(scope, target, domain)
        self._want_pass()

    def _scope(self, scope: str, target: str) -> list[ClusterState]:
        if scope == "provider":
            return [cs for cs in self.state.clusters if cs.provider == target]
        return [self.state.by_name[target]]

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
            self._fail("domain", cs.name, d, f"{cs.name}#{d}", "domain")
            repair = self.rng.expovariate(1.0 / (cs.spec.repair_h * 3600.0))
            self.loop.at(self.loop.now + repair, self._domain_repair, (cs, d))
        self._schedule_domain_failure(cs)

    def _domain_repair(self, arg: tuple[ClusterState, int]) -> None:
        cs, d = arg
        self._repair("domain", cs.name, d)

    def _schedule_cluster_failure(self, cs: ClusterState) -> None:
        if cs.spec.cluster_mtbf_h:
            self.loop.at(self.loop.now + self.rng.expovariate(1.0 / (cs.spec.cluster_mtbf_h * 3600.0)),
                         self._cluster_fail, cs)

    def _cluster_fail(self, cs: ClusterState) -> None:
        self._fail("cluster", cs.name, None, cs.name, "cluster")
        repair = self.rng.expovariate(1.0 / (cs.spec.cluster_repair_h * 3600.0))
        self.loop.at(self.loop.now + repair, self._cluster_repair, cs)

    def _cluster_repair(self, cs: ClusterState) -> None:
        self._repair("cluster", cs.name, None)
        self._schedule_cluster_failure(cs)

    def _outage_start(self, o: Outage) -> None:
        scope, target, domain = _outage_target(o)
        self._fail(scope, target, domain, o.target, f"{o.kind} outage")
        self.loop.at(self.loop.now + o.duration_s, self._outage_end, o)

    def _outage_end(self, o: Outage) -> None:
        scope, target, domain = _outage_target(o)
        self._repair(scope, target, domain)

    def _ramp(self, _=None) -> None:
        """A ramp step or a contract date: apply capacity levels; work on vanished domains is requeued."""
        now = self.loop.now
        for cs in self.state.clusters:
            self.acc.mark(cs, now)
        before = [cs.domains.active for cs in self.state.clusters]
        hit = self.sched.set_time(now, "capacity withdrawn (ramp down)")
        for cs, b in zip(self.state.clusters, before):
            if cs.domains.active > b and b == 0 and self.opt.random_failures and self.p.scenario.failures.random:
                self._schedule_domain_failure(cs)  # its failure process starts with its first domains
        if hit:
            self.metrics.failures["capacity withdrawn"] += 1
            self.metrics.failure_log.append((now, "capacity withdrawn", "ramp down",
                                             sum(len(w.requests) for w in hit)))
        self._want_pass()

    # -- ticks ---------------------------------------------------------------------------------------
    def _replan(self, _=None) -> None:
        assert self.opt.planner is not None
        self.engine.set_guide(self.opt.planner.plan(self.loop.now))
        self.sched.wake_all()   # the plan changed every score: try waiting work again
        self._want_pass()

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
        if self.opt.planner is not None:
            for t in self.opt.planner.times(self.t0):
                if self.t0 <= t < self.t_end:
                    self.loop.at(t, self._replan)
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
        doc = summarize(self, end, wall)
        doc["plans"] = list(self.opt.planner.log) if self.opt.planner is not None else []
        return doc

    def _run_loop(self) -> None:
        self.loop.run(until=self.t_end)
        if self.opt.drain:
            # Past the horizon: no new arrivals or failures matter, only the work already admitted.
            while (self.queued or self._finite_running) and self.loop.step():
                pass


def _outage_target(o: Outage) -> tuple[str, str, int | None]:
    if o.kind == "domain":
        name, _, d = o.target.partition("#")
        return "domain", name, int(d)
    return o.kind, o.target, None
