"""Demand-following services: replicas are sized by the speed of where they run (scheduling/services.py),
and the simulator serves demand in reference replicas, as the planner counts it."""

from __future__ import annotations

import random

import pytest

from gpufleet.files import parse_scenario
from gpufleet.placement.request import Request
from gpufleet.scheduling.services import ServiceRegion
from gpufleet.scheduling.work import QUEUED, RUNNING, Work
from gpufleet.simulation.failures import parse_outage
from gpufleet.simulation.simulator import SimOptions, Simulator


def replica(n: int, state: str = QUEUED, speed: float = 1.0) -> Work:
    w = Work(Request(id=f"svc/r/{n}", gpus=8, group=8, speeds={"H100": 1.0, "GB200": 2.5}, kind="inference"),
             0.0, float("inf"), kind="inference", workload="svc")
    w.state, w.speed = state, speed
    return w


def test_a_region_first_asks_at_the_fastest_speed_then_at_the_speed_replicas_got():
    r = ServiceRegion({"H100": 1.0, "GB200": 2.5})
    r.want = 10
    assert r.reconcile().add == 4                     # ceil(10 / 2.5)
    r.live = [replica(i) for i in range(4)]
    for w in r.live:                                  # they landed on H100
        w.state, w.speed = RUNNING, 1.0
        r.started(w)
    change = r.reconcile()
    assert change.add == 6 and not change.stop        # 4 served at 1.0: 6 more at 1.0
    assert r.served() == 4


def test_a_region_lets_surplus_replicas_go_newest_first():
    r = ServiceRegion({"H100": 1.0, "GB200": 2.5})
    r.want = 5
    r.live = [replica(0, RUNNING, 2.5), replica(1, RUNNING, 2.5), replica(2, RUNNING, 2.5), replica(3)]
    change = r.reconcile()
    assert {w.id for w in change.stop} == {"svc/r/3", "svc/r/2"}   # the queued one and the newest running
    assert change.add == 0
    r.forget(change.stop)
    assert r.capacity() == 5.0 and r.served() == 5.0


def test_demand_falls_to_zero_stops_everything():
    r = ServiceRegion({"H100": 1.0})
    r.live = [replica(0, RUNNING), replica(1)]
    r.want = 0
    assert len(r.reconcile().stop) == 2


SCENARIO = """
name: speed
start: 2026-01-01
end: 2026-01-03
clusters:
  - {name: slow, provider: oci, region: us-east-1, gpu: H100, domains: 100, price_per_gpu_hour: 2.0}
FAST
workloads:
  - kind: inference
    name: chat
    gpus_per_replica: 8
    gpu_types: {H100: 1.0, GB200: 2.5}
    demand: [{date: 2026-01-01, replicas: {us-east-1: 100}}]
"""
FAST = "  - {name: fast, provider: aws, region: us-east-1, gpu: GB200, domain_size: 72, domains: 10, price_per_gpu_hour: 1.0}"


@pytest.mark.parametrize("fast,expected_gpus", [(True, 40 * 8), (False, 100 * 8)])
def test_the_simulator_holds_replicas_for_reference_demand(fast, expected_gpus):
    text = SCENARIO.replace("FAST", FAST if fast else "")
    p = parse_scenario(text, "speed.yaml")
    sim = Simulator(p, "cost", SimOptions(random_failures=False), random.Random(0))
    res = sim.run()
    # 100 reference replicas: 40 on GB200 at 2.5 each (the cheaper cluster), or 100 on H100
    assert sim.state.class_used["inference"] == expected_gpus
    assert res["inference_slo_attainment"] == pytest.approx(1.0)


def test_a_replica_moved_at_once_by_a_failure_loses_no_serving_time():
    """Asked and served are integrated at the rates in force over each interval: a domain failure that
    moves a replica to another domain at once costs nothing, and the hours before it count as served."""
    p = parse_scenario(SCENARIO.replace("FAST", "").replace("us-east-1: 100", "us-east-1: 2"), "speed.yaml")
    outage = parse_outage("slow#0@2026-01-01T20:00/6h", p)
    sim = Simulator(p, "cost", SimOptions(random_failures=False, outages=[outage]), random.Random(0))
    res = sim.run()
    assert res["timeseries"]["failures"][0]["jobs"] == 1          # the outage did hit a replica
    assert res["inference"]["chat"]["asked_replica_hours"] == pytest.approx(2 * 48)
    assert res["inference"]["chat"]["served_replica_hours"] == pytest.approx(2 * 48)


def test_a_replica_that_waits_for_capacity_is_not_counted_before_it_starts():
    """The other way round: a replica that cannot be placed serves nothing until it starts."""
    p = parse_scenario(SCENARIO.replace("FAST", "").replace("domains: 100", "domains: 1")
                       .replace("us-east-1: 100", "us-east-1: 2"), "speed.yaml")
    outage = parse_outage("slow#0@2026-01-01T00:00/12h", p)   # the only domain: down for the first 12 h
    sim = Simulator(p, "cost", SimOptions(random_failures=False, outages=[outage]), random.Random(0))
    res = sim.run()
    # one 8-GPU node holds one of the two replicas, from hour 12 on
    assert res["inference"]["chat"]["served_replica_hours"] == pytest.approx(36)
    assert res["inference_slo_attainment"] == pytest.approx(36 / 96, abs=1e-4)
