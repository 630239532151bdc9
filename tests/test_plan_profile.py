"""Plan-guided placement: the guide a plan becomes, the `plan` and `shadow` scorers that read it, and the
simulator re-planning on a schedule."""

from __future__ import annotations

import random
from datetime import date

import numpy as np
import pytest

from builders import a_cluster, a_portfolio, a_request, an_engine
from gpufleet.files import parse_scenario
from gpufleet.placement.guide import Guide
from gpufleet.placement.scorers import plan, shadow
from gpufleet.placement.state import to_seconds
from gpufleet.planning import build_problem, solve_problem
from gpufleet.planning.guidance import Replanner, guide_of
from gpufleet.simulation.simulator import SimOptions, Simulator

T0, T1, T2 = (to_seconds(date(2026, m, 1)) for m in (5, 6, 7))


def two():
    p = a_portfolio(a_cluster("cheap", provider="lambda", price_per_gpu_hour=2.0, domains=4),
                    a_cluster("dear", provider="oci", price_per_gpu_hour=8.0, domains=4))
    return an_engine(p, profile="plan")


def a_guide(workloads=None, kinds=None, value=((0.0, 0.0), (0.0, 0.0))) -> Guide:
    return Guide(bounds_s=(T0, T1, T2), clusters=("dear", "cheap"), workloads=workloads or {}, kinds=kinds or {},
                 value=value)


def test_a_guide_finds_the_period_and_reorders_its_columns():
    g = a_guide({"w": ((1.0, 2.0), (3.0, 4.0))})
    assert [g.period(t) for t in (T0 - 1, T0, T1 - 1, T1, T2 + 99)] == [0, 0, 0, 1, 1]
    r = g.reorder(["cheap", "dear", "unknown"])
    assert r.workloads["w"] == ((2.0, 1.0, 0.0), (4.0, 3.0, 0.0))


def test_the_plan_scorer_follows_the_workloads_planned_room_over_the_cheaper_cluster():
    e = two()
    e.set_guide(a_guide({"evals": ((16.0, 0.0), (16.0, 0.0))}))   # June (the engine's time): dear only
    req = a_request("evals/1", 8, 8, workload="evals")
    cands = e.state.clusters                                          # fleet order: cheap, dear
    assert plan(cands, req, e.state, {}) == [0.0, 1.0]
    d = e.decide(req)
    assert d.cluster == "dear"
    e.commit(d)
    e.commit(e.decide(a_request("evals/2", 8, 8, workload="evals")))
    # the plan's 16 GPUs on `dear` are taken: a third job scores 0 everywhere and the others decide
    assert plan(cands, a_request("evals/3", 8, 8, workload="evals"), e.state, {}) == [0.0, 0.0]
    assert e.decide(a_request("evals/3", 8, 8, workload="evals")).cluster == "cheap"


def test_work_the_plan_does_not_name_follows_its_class_and_without_a_plan_every_cluster_scores_one():
    e = two()
    req = a_request("adhoc", 8, 8, kind="batch")
    assert plan(e.state.clusters, req, e.state, {}) == [1.0, 1.0]
    e.set_guide(a_guide(kinds={"batch": ((0.0, 4.0), (0.0, 8.0))}))
    assert plan(e.state.clusters, req, e.state, {}) == [1.0, 0.0]      # June: 8 planned on cheap
    assert plan(e.state.clusters, a_request("t", 8, 8, kind="training"), e.state, {}) == [0.0, 0.0]


def test_the_shadow_scorer_adds_the_capacity_price_to_the_contract_rate():
    e = two()
    req = a_request("x", 8, 8)
    without = shadow(e.state.clusters, req, e.state, {})
    assert without[0] == 1.0 > without[1]                            # no plan: the cost scorer
    e.set_guide(a_guide(value=((0.0, 0.0), (0.0, 20.0))))            # June: cheap's capacity is worth $20/h
    ctx: dict = {}
    s = shadow(e.state.clusters, req, e.state, ctx)
    assert ctx["cost_per_gpu_hour"] == [2.0, 8.0] and s[1] == 1.0 > s[0]


SMALL = "examples/small.yaml"


def small():
    with open(SMALL, encoding="utf-8") as f:
        return parse_scenario(f.read(), SMALL)


def test_a_guide_holds_the_plans_gpus_per_workload_and_class():
    p = small()
    pr = build_problem(p, date(2026, 1, 1), date(2026, 4, 1))
    result = solve_problem(pr)
    g = guide_of(result)
    assert g.clusters == pr.clusters and g.periods == pr.periods.n
    hours = np.asarray(pr.periods.hours)
    for s, w in enumerate(pr.streams.workloads):
        mine = [i for i, x in enumerate(pr.streams.workloads) if x == w]
        want = result.usage[mine].sum(axis=0) / hours                   # [C, P]
        assert np.allclose(np.array(g.workloads[w]).T, want)
    streams = [(s, n) for s, n in enumerate(pr.streams.names) if n != pr.streams.workloads[s]]
    assert streams                                        # small.yaml's service in two regions
    for s, name in streams:                               # a replica in a region follows its stream's row
        assert name.startswith("chat@") and np.allclose(np.array(g.workloads[name]).T, result.usage[s] / hours)
    total = sum(np.array(grid) for grid in g.kinds.values())
    assert np.allclose(total.T, result.usage.sum(axis=0) / hours)
    assert np.allclose(np.array(g.value).T, result.capacity_value)


def test_the_replanner_plans_at_the_start_and_each_month_and_logs_each_plan():
    p = small()
    end = to_seconds(date(2026, 4, 1))
    r = Replanner(p, end, "monthly")
    start = to_seconds(date(2026, 1, 15))
    assert r.times(start) == [start] + [to_seconds(date(2026, m, 1)) for m in (2, 3)]
    assert Replanner(p, end, "quarterly").times(start) == [start]
    g = r.plan(start)
    assert g is not None and g.bounds_s[0] == to_seconds(date(2026, 1, 15)) and g.bounds_s[-1] == end
    assert r.log[0]["status"] == "optimal" and r.log[0]["at"] == "2026-01-15"
    assert r.plan(end) is None
    with pytest.raises(ValueError):
        Replanner(p, end, "hourly")


def test_a_simulation_with_the_plan_profile_replans_and_is_reproducible():
    p = small()
    end = to_seconds(date(2026, 3, 1))

    def run():
        opts = SimOptions(until_s=end, planner=Replanner(p, end, "monthly"))
        return Simulator(p, "plan", opts, random.Random(3)).run()

    a, b = run(), run()
    assert [x["at"] for x in a["plans"]] == ["2026-01-01", "2026-02-01"]
    for k in ("cost_usd", "gpu_hours", "restarts", "inference_slo_attainment", "per_provider"):
        assert a[k] == b[k]
    # without a plan the profile still places work (every plan score is 1)
    free = Simulator(p, "plan", SimOptions(until_s=end), random.Random(3)).run()
    assert free["plans"] == [] and free["gpu_hours"] > 0


def test_a_replan_starts_from_the_last_plan_and_finds_the_same_optimum_as_a_cold_one():
    p = small()
    end = to_seconds(date(2026, 7, 1))
    r = Replanner(p, end, "monthly")
    r.plan(to_seconds(date(2026, 1, 1)))
    r.plan(to_seconds(date(2026, 2, 1)))
    cold = solve_problem(build_problem(p, date(2026, 2, 1), date(2026, 7, 1)))
    warm = r.log[1]
    assert warm["status"] == cold.status == "optimal"
    assert warm["objective_usd"] == pytest.approx(cold.objective_usd, rel=1e-9, abs=0.01)
    assert warm["iterations"] <= cold.iterations
