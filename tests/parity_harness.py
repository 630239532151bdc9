"""The same jobs, failures and clock through the simulator and through the live control loop.

The live side is the real `Control` on a SQLite file with a fake backend whose work runs for what the
scheduler says is left of it, driven by `Control.step()` on a manual clock that jumps from event to event
(submissions, failures, repairs, work ending). Both sides report what they did in one form: the start
order (time, job, clusters), and per job its lost GPU-seconds and final state.

Times are chosen so that no submission coincides with the end of running work or a failure (their fractional
seconds differ), because the order of simultaneous events is each driver's own business.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpufleet.backends.base import BackendSet
from gpufleet.backends.fake import FakeBackend
from gpufleet.files import parse_scenario
from gpufleet.model.job import JobSpec
from gpufleet.placement.state import to_seconds
from gpufleet.scheduling.translate import job_work
from gpufleet.server.commands import MarkCapacity, Submit
from gpufleet.server.control import Control
from gpufleet.simulation.failures import Outage
from gpufleet.simulation.simulator import SimOptions, Simulator
from gpufleet.store import connect, upgrade
from gpufleet.store import tables as T

PARITY_SCENARIO = """
name: parity
start: 2026-01-01
end: 2027-01-01
providers:
  - {name: prov-a, kind: custom, regions: [r1, r2]}
  - {name: prov-b, kind: custom, regions: [r1, r2]}
clusters:
  - {name: a-h100, provider: prov-a, region: r1, gpu: H100, domain_size: 8, domains: 2, price_per_gpu_hour: 2.0}
  - {name: b-h100, provider: prov-b, region: r1, gpu: H100, domain_size: 8, domains: 2, price_per_gpu_hour: 2.5}
  - {name: b-h200, provider: prov-b, region: r2, gpu: H200, domain_size: 8, domains: 1, price_per_gpu_hour: 3.0}
contracts:
  - {name: a-od, kind: on_demand, provider: prov-a, clusters: [a-h100], start: 2026-01-01, end: 2027-01-01}
  - {name: b-od, kind: on_demand, provider: prov-b, clusters: [b-h100, b-h200], start: 2026-01-01, end: 2027-01-01}
teams:
  - {name: research, quota_gpus: 32}
  - {name: serving, quota_gpus: 24}
  - {name: batch, quota_gpus: 8}
failures: {random: false}
"""
T0 = to_seconds(parse_scenario(PARITY_SCENARIO, "parity").start)


@dataclass
class Case:
    jobs: list[tuple[float, dict]]                  # (seconds after T0, job file fields)
    failures: list[tuple[float, float, str, str]] = field(default_factory=list)  # (at, for, scope, target)
    scenario: str = PARITY_SCENARIO

    def times(self) -> list[tuple[float, dict]]:
        """Submission times with a fraction of a millisecond of their own (see the module's note)."""
        return [(T0 + at + (i + 1) * 1e-3, job) for i, (at, job) in enumerate(self.jobs)]

    def outages(self) -> list[tuple[float, float, str, str]]:
        return [(T0 + at + 0.5e-3 + i * 1e-3, dur + 0.25e-3, scope, target)
                for i, (at, dur, scope, target) in enumerate(self.failures)]


@dataclass
class Outcome:
    starts: list[tuple[float, int, tuple[str, ...]]]   # (time, job id, clusters), in start order
    lost_gpu_s: dict[int, float]
    states: dict[int, str]


def spec_of(job: dict) -> JobSpec:
    return JobSpec.model_validate({"command": "true", **job})


def run_sim(case: Case) -> Outcome:
    p = parse_scenario(case.scenario, "parity")
    outages = [Outage(target, scope, at, dur) for at, dur, scope, target in case.outages()]
    end = max([t for t, _ in case.times()] + [T0]) + 400 * 86400.0
    opts = SimOptions(start_s=T0, until_s=end, random_failures=False, outages=outages, scenario_workloads=False,
                      drain=True)
    sim = Simulator(p, None, opts, random.Random(0))
    sim.keep_log = True
    catalog = sim.catalog
    works = [job_work(spec_of(job), catalog, t, prefix=str(i + 1), label=f"job {i + 1}")
             for i, (t, job) in enumerate(case.times())]
    sim.add_stream(iter(works))
    sim.run(time.perf_counter)
    state = {"finished": "succeeded", "running": "running", "queued": "queued", "failed": "failed"}
    return Outcome(starts=[(t, int(w), clusters) for t, w, clusters in sim.started_log],
                   lost_gpu_s={int(w.id): w.lost_gpu_s for w in works},
                   states={int(w.id): state.get(w.state, w.state) for w in works})


class LiveHarness:
    """The control loop without its thread: `at(t)` moves the manual clock, `step()` runs one turn."""

    def __init__(self, tmp: Path, scenario: str):
        self.now = T0
        url = f"sqlite:///{tmp / 'parity.db'}"
        upgrade(url)
        self.db = connect(url)
        self.fake = FakeBackend("local", clock=lambda: self.now, run_for=self._run_for)
        self.control = Control(self.db, BackendSet("local", {"local": self.fake}), tmp / "data",
                               clock=lambda: self.now, poll_s=0.0, spend_every_s=1e12)
        self.control.start(scenario, "parity", thread=False)

    def _run_for(self, launch) -> float | None:
        w = self.control.works.get(launch.job_id)
        return w.work_s / w.speed if w is not None and w.work_s < float("inf") else None

    def submit(self, spec: JobSpec, arrived: float) -> int:
        fut = self.control.submit(Submit("harness", spec.team, spec, None, arrived))
        self.step()
        return fut.result(timeout=0)["id"]

    def command(self, cmd) -> None:
        fut = self.control.submit(cmd)
        self.step()
        fut.result(timeout=0)

    def step(self) -> None:
        self.control.step()

    def run(self, case: Case) -> Outcome:
        events: list[tuple[float, int, object]] = []
        for t, job in case.times():
            events.append((t, 0, spec_of(job)))
        for at, dur, scope, target in case.outages():
            events.append((at, 1, MarkCapacity("harness", scope, target, None, True, "injected")))
            events.append((at + dur, 2, MarkCapacity("harness", scope, target, None, False, "repaired")))
        events.sort(key=lambda e: (e[0], e[1]))
        i = 0
        for _ in range(100_000):
            due = self.fake.next_due()
            nxt = events[i][0] if i < len(events) else None
            if due is None and nxt is None:
                break
            if nxt is not None and (due is None or nxt < due):
                self.now = nxt
                payload = events[i][2]
                i += 1
                if isinstance(payload, JobSpec):
                    self.submit(payload, self.now)
                else:
                    self.command(payload)
            else:
                self.now = due
                self.step()
        return self.outcome()

    def outcome(self) -> Outcome:
        with Session(self.db) as s:
            pls = s.execute(select(T.Placement.placed_at, T.Placement.job_id, T.Placement.attempt,
                                   T.Placement.cluster).order_by(T.Placement.id)).all()
            jobs = s.execute(select(T.Job.id, T.Job.lost_gpu_hours, T.Job.state)).all()
        starts: dict[tuple[int, int], tuple[float, int, list[str]]] = {}
        for at, jid, attempt, cluster in pls:
            starts.setdefault((jid, attempt), (at, jid, []))[2].append(cluster)
        return Outcome(starts=[(at, jid, tuple(cs)) for at, jid, cs in starts.values()],
                       lost_gpu_s={jid: (lost or 0.0) * 3600.0 for jid, lost, _ in jobs},
                       states={jid: state for jid, _, state in jobs})

    def close(self) -> None:
        self.control.stop()
        self.db.dispose()


def run_live(case: Case, tmp: Path) -> Outcome:
    h = LiveHarness(tmp, case.scenario)
    try:
        return h.run(case)
    finally:
        h.close()
