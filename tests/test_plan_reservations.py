"""Reservations for the plan's gangs: the `reservation` filter keeps whole tensor-parallel groups free where the
plan runs a gang, from a lead before its first run until the run holds them; the `plan` scorer lends room
the plan gives a gang not yet held; and the bundled posttrain-crunch scenario, where this decides the bill."""

from __future__ import annotations

import random
from datetime import date

import numpy as np

from builders import a_cluster, a_portfolio, a_request, an_engine
from gpufleet.files import load_scenario
from gpufleet.placement.guide import Gang, Guide
from gpufleet.placement.scorers import plan
from gpufleet.placement.state import to_seconds
from gpufleet.planning.guidance import HOLD_LEAD_S, Replanner, _whole_runs, gangs_of
from gpufleet.planning.periods import add_months
from gpufleet.server.plans import guide_doc, guide_from
from gpufleet.simulation.simulator import SimOptions, Simulator

T0, T1, T2 = (to_seconds(date(2026, m, 1)) for m in (5, 6, 7))   # the engine stands at T1 (June)


def engine(hold_from: float = T0, workloads: dict | None = None):
    p = a_portfolio(a_cluster("cheap", provider="lambda", price_per_gpu_hour=2.0, domains=4),
                    a_cluster("dear", provider="oci", price_per_gpu_hour=8.0, domains=4))
    e = an_engine(p, profile="plan")
    rows = workloads or {"post": ((0.0, 0.0), (0.0, 16.0))}      # columns: dear, cheap; June: 16 on cheap
    e.set_guide(Guide(bounds_s=(T0, T1, T2), clusters=("dear", "cheap"), workloads=rows, kinds={},
                      value=((0.0, 0.0), (0.0, 0.0)), gangs={"post": Gang(16, 8, 500, hold_from)},
                      held={"post": ((0.0, 0.0), (0.0, 16.0))}))
    return e


def batch(i: int, gpus: int = 8, priority: int = 100):
    return a_request(f"evals/{i}", gpus, gpus, workload="evals", kind="batch", priority=priority)


def place(e, req) -> str | None:
    d = e.decide(req)
    if d.cluster is not None:
        e.commit(d)
    return d.cluster


def test_lower_priority_work_may_not_break_the_groups_held_for_the_gang():
    e = engine()
    assert [place(e, batch(i)) for i in range(2)] == ["cheap", "cheap"]   # 2 of 4 domains left: both held
    d = e.decide(batch(2), explain=True)
    assert d.cluster == "dear"
    why = {v.cluster: v.rejected for v in d.verdicts if v.rejected is not None}
    assert why["cheap"].filter == "reservation"
    assert "holds 2 free group(s) of 8 GPUs" in why["cheap"].message and "break 1" in why["cheap"].message
    assert place(e, batch(3, priority=900)) == "cheap"      # work above the gang's priority is not held out


def test_the_gang_itself_takes_the_held_room_and_then_nothing_is_held():
    e = engine()
    place(e, batch(0))
    place(e, batch(1))
    gang = a_request("post/1", 16, 8, workload="post", kind="training", priority=500)
    assert place(e, gang) == "cheap"
    assert e.state.workload_used[("post", e.state.clusters[0].index)] == 16
    e2 = engine()
    assert place(e2, gang) == "cheap"                        # running: its room is its own, nothing more held
    assert [place(e2, batch(i)) for i in range(2)] == ["cheap", "cheap"]


def test_small_work_that_fits_a_partly_used_domain_breaks_no_held_group():
    e = engine()
    assert place(e, batch(0, gpus=4)) == "cheap"             # one domain half used, three whole ones free
    assert place(e, batch(1, gpus=4)) == "cheap"             # best fit: into the half-used domain, breaks none
    assert place(e, batch(2, gpus=8)) == "cheap"             # 3 whole free, 2 held: one may go
    assert place(e, batch(3, gpus=8)) == "dear"


def test_nothing_is_held_before_the_lead_and_the_plan_scorer_lends_that_room():
    rows = {"post": ((0.0, 0.0), (0.0, 16.0)), "evals": ((0.0, 0.0), (0.0, 8.0))}
    early = engine(hold_from=T2, workloads=rows)
    assert [place(early, batch(i)) for i in range(3)] == ["cheap"] * 3
    req = batch(9)
    cheap = early.state.clusters[0]
    assert cheap.name == "cheap"
    assert plan([cheap], req, early.state, {}) == [0.0]       # 8 planned + 16 lent, 24 used: no room left
    held = engine(hold_from=T0, workloads=rows)
    place(held, batch(0))
    assert plan([held.state.clusters[0]], req, held.state, {}) == [0.0]   # held: evals' own 8 only, used
    fresh = engine(hold_from=T2, workloads=rows)
    place(fresh, batch(0))
    assert plan([fresh.state.clusters[0]], req, fresh.state, {}) == [1.0]  # 24 - 8 used: room for 8


def test_gangs_come_from_the_portfolio_and_survive_the_database_round_trip():
    p = load_scenario("examples/posttrain-crunch.yaml")
    gangs = gangs_of(p)
    assert gangs == {"posttrain": Gang(512, 8, 700, to_seconds(date(2026, 1, 3)) - HOLD_LEAD_S)}
    g = Guide(bounds_s=(T0, T1), clusters=("a",), workloads={"posttrain": ((1.0,),)}, kinds={},
              value=((0.0,),), gangs=gangs, held={"posttrain": ((512.0,),)})
    assert guide_from(guide_doc(g)) == g


def test_a_fractional_plan_holds_each_run_once_where_most_of_it_is():
    # [C, P]: period 0 splits one run 0.6 / 0.4; period 1 plans 1.5 runs on c0 and 0.7 on c1 (2.2: two runs)
    gpus = np.array([[0.6, 1.5], [0.4, 0.7]]) * 100
    assert _whole_runs(gpus, 100) == ((100.0, 0.0), (100.0, 100.0))
    assert _whole_runs(np.array([[0.2], [0.2]]) * 100, 100) == ((0.0, 0.0),)   # 0.4 of a run: none held


def _month(profile: str) -> dict:
    p = load_scenario("examples/posttrain-crunch.yaml")
    end = to_seconds(add_months(p.start, 1))
    planner = Replanner(p, end, "monthly") if profile == "plan" else None
    return Simulator(p, profile, SimOptions(until_s=end, planner=planner), random.Random(0)).run()


def test_on_posttrain_crunch_the_plan_keeps_the_gang_on_reserved_capacity_and_greed_does_not():
    planned, greedy = _month("plan"), _month("cost")
    billed = {r["profile"]: {k: v[-1] for k, v in r["timeseries"]["contract_billed_usd"].items()}
              for r in (planned, greedy)}
    assert billed["plan"]["cw-od"] == 0 < billed["cost"]["cw-od"]       # the gang's dear on-demand bill
    assert planned["cost_usd"] < 0.75 * greedy["cost_usd"]
    assert planned["finished"] >= greedy["finished"] * 0.99


# -- room under a concentration cap that the plan gives other work (`cap_reservation`) -----------------------
def capped_engine(profile: str = "plan", guided: bool = True):
    """Serving capped at half per provider; the plan gives coreweave's half to region b (16 GPUs) before c (8)."""
    p = a_portfolio(a_cluster("az", provider="azure", region="a", domains=4),
                    a_cluster("fast", provider="coreweave", region="b", domains=4),
                    a_cluster("slow", provider="coreweave", region="c", domains=4),
                    limits=[{"workload_class": "inference", "max_share": 0.5}])
    e = an_engine(p, profile=profile)
    if guided:
        rows = {"svc@a": ((24.0, 0.0, 0.0),) * 2, "svc@b": ((0.0, 16.0, 0.0),) * 2, "svc@c": ((0.0, 0.0, 8.0),) * 2}
        e.set_guide(Guide(bounds_s=(T0, T1, T2), clusters=("az", "fast", "slow"), workloads=rows,
                          kinds={"inference": ((24.0, 16.0, 8.0),) * 2}, value=((0.0,) * 3,) * 2,
                          classes={w: "inference" for w in rows}))
    return e


def replica(region: str, i: int):
    return a_request(f"svc/{region}/{i}", 8, 8, workload=f"svc@{region}", kind="inference", priority=950,
                     regions=frozenset([region]), spread_key="svc")


def test_work_beyond_its_plan_may_not_take_the_room_under_a_cap_the_plan_gives_others():
    e = capped_engine()
    assert place(e, replica("a", 0)) == "az"
    assert place(e, replica("c", 0)) == "slow"                 # within its plan
    assert place(e, replica("a", 1)) == "az"                   # coreweave may carry 12 of 24: 4 more
    d = e.decide(replica("c", 1), explain=True)                # beyond its plan: that room is held for region b
    assert d.cluster is None
    why = {v.cluster: v.rejected for v in d.verdicts if v.rejected is not None}
    assert why["slow"].filter == "cap_reservation" and "holds 16 of them" in why["slow"].message
    assert place(e, replica("b", 0)) == "fast"
    assert place(e, replica("a", 2)) == "az"
    assert place(e, replica("b", 1)) == "fast"
    assert place(e, replica("c", 1)) == "slow"                 # the plan's share is taken: the cap alone decides


def test_without_a_plan_nothing_under_a_cap_is_held():
    e = capped_engine(guided=False)
    assert [place(e, replica(r, 0)) for r in ("a", "c", "a")] == ["az", "slow", "az"]
    assert place(e, replica("c", 1)) == "slow"                 # the cap alone: coreweave 8 of 24, under half


def test_preemption_does_not_take_the_room_under_a_cap_the_plan_gives_others():
    e = capped_engine()
    assert [place(e, replica(r, 0)) for r in ("a", "c")] + [place(e, replica("a", 1))] == ["az", "slow", "az"]
    for i in range(3):                                          # low-priority batch fills the rest of `slow`
        assert place(e, a_request(f"b{i}", 8, 8, kind="batch", regions=frozenset(["c"]))) == "slow"
    d = e.decide(replica("c", 1))                               # beyond its plan; `slow` is full of batch
    assert d.cluster is None and not d.victims                  # no eviction onto room held for region b
    assert place(e, replica("b", 0)) == "fast"
    assert place(e, replica("a", 2)) == "az"
    assert place(e, replica("b", 1)) == "fast"
    d = e.decide(replica("c", 1))                               # the plan's share is taken: it may preempt now
    assert d.cluster == "slow" and len(d.victims) == 1
