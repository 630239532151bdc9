"""Build small simulations in tests: a portfolio, hand-made jobs kept by reference, and a run."""

from __future__ import annotations

import random
import time
from datetime import date

from builders import a_portfolio
from gpufleet.placement.request import Request
from gpufleet.placement.state import to_seconds
from gpufleet.scheduling.work import Work as SimJob
from gpufleet.simulation.simulator import SimOptions, Simulator

T0 = to_seconds(date(2026, 1, 1))
H = 3600.0


def a_job(rid: str, at_h: float, hours: float, gpus: int = 8, group: int | None = None, *, types=("H100",),
          priority: int = 0, preemptible: bool = True, kind: str = "batch", ckpt_h: float = 1.0, **req) -> SimJob:
    r = Request(id=rid, gpus=gpus, group=group or min(gpus, 8), speeds={t: 1.0 for t in types}, kind=kind,
                priority=priority, preemptible=preemptible, checkpoint_interval_s=ckpt_h * H, **req)
    return SimJob(r, T0 + at_h * H, hours * H, kind=kind)


def simulate(portfolio, jobs: list[SimJob], *, queue="fifo", until_h=24 * 30, seed=1, profile="cost",
             failures=False, outages=(), drain=True, workloads=False) -> tuple[dict, Simulator]:
    opts = SimOptions(queue=queue, until_s=T0 + until_h * H, random_failures=failures, outages=list(outages),
                      scenario_workloads=workloads, drain=drain)
    sim = Simulator(portfolio, profile, opts, random.Random(seed))
    sim.add_stream(iter(sorted(jobs, key=lambda j: j.submit_s)))
    return sim.run(time.perf_counter), sim


def one_cluster(domains: int = 2, **kw):
    from builders import a_cluster
    return a_portfolio(a_cluster("c", domains=domains, **kw))
