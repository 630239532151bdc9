"""The planner at fleet scale: identical streams are merged into one LP column block (model.merge_groups), the
smaller LP is solved and its solution lifted back onto the original LP (solve._lift). These tests check that the
merge changes nothing a caller can see: the optimum (against the planner without merging and against the
independent dense formulation of test_planning_optimality), feasibility of the lifted plan (check_plan), the
lifted duals (dual feasible, gap 0) and what each stream gets. Speed is measured by bench/plan.py, not here.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest
from builders import a_cluster, a_contract, a_portfolio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_planning_optimality import reference_lp

from gpufleet.planning.check import check_plan
from gpufleet.planning.model import BuildOptions, build_lp, merge_groups
from gpufleet.planning.problem import build_problem
from gpufleet.planning.solution import extract
from gpufleet.planning.solve import solve

ROOT = Path(__file__).resolve().parents[1]
TYPES = {"H100": 1.0, "H200": 1.4}


def _bench():
    spec = importlib.util.spec_from_file_location("bench_plan", ROOT / "bench" / "plan.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _plan(pr, merge=True, options=None):
    lp = build_lp(pr, BuildOptions(merge=merge))
    sol = solve(lp, time.perf_counter, options=options)
    return lp, sol, extract(pr, lp, sol, 0.0)


def _service(name, reps, region="us-east-1", types=None):
    return {"kind": "inference", "name": name, "gpus_per_replica": 8, "gpu_types": types or TYPES,
            "demand": [{"date": d, "replicas": {region: n}} for d, n in reps]}


def _batch(name, per_day, types=None, start="2026-01-01"):
    return {"kind": "batch", "name": name, "gpus": 8, "gpu_types": types or TYPES, "jobs_per_day": per_day,
            "duration_s": 86400.0, "start": start, "end": "2026-04-01"}


def _portfolio(services, batches, *, ramp_day="2026-02-15", domains=(2, 4), limits=(), n1=0.0, training=True,
               contracts="commit"):
    """Three clusters on three providers in one region (a mid-month ramp on the first), mergeable streams."""
    clusters = [a_cluster("c0", provider="aws", gpu="H100", price_per_gpu_hour=3.0,
                          ramp=[{"date": "2026-01-01", "domains": domains[0]},
                                {"date": ramp_day, "domains": domains[1]}]),
                a_cluster("c1", provider="oci", gpu="H200", domains=3, price_per_gpu_hour=4.0),
                a_cluster("c2", provider="lambda", gpu="H100", domains=2, price_per_gpu_hour=2.5)]
    ks = {"commit": [a_contract("k", "spend_commitment", provider="aws", clusters=("c0",), end="2026-03-01",
                                commitment_usd=20000.0, price_per_gpu_hour=1.5)],
          "reserved": [a_contract("k", "reserved_capacity", provider="oci", clusters=("c1",), gpus=8,
                                  price_per_gpu_hour=0.8,
                                  expansions=[{"start": "2026-02-01", "gpus": 8, "price_per_gpu_hour": 1.2}])],
          "none": []}[contracts]
    work = list(services) + list(batches)
    if training:
        work.append({"kind": "training", "name": "t", "gpus": 16, "tp": 8, "gpu_types": TYPES,
                     "work_gpu_hours": 20000.0, "start": "2026-01-10", "deadline": "2026-03-01"})
    policies = {"concentration_limits": list(limits), "n1_fraction": n1, "critical_classes": ["inference"]}
    return a_portfolio(*clusters, contracts=ks, workloads=work, start="2026-01-01", end="2026-04-01",
                       policies=policies)


def _dual_feasible(lp, sol, tol=1e-7):
    """Reduced costs and row duals of the original LP have the signs an optimal minimisation needs."""
    free_above = (lp.col_lo == 0) & np.isinf(lp.col_hi)
    assert sol.col_dual[free_above].min(initial=0.0) >= -tol
    assert sol.row_dual[np.isinf(lp.row_lo) & np.isfinite(lp.row_hi)].max(initial=0.0) <= tol
    assert sol.row_dual[np.isinf(lp.row_hi) & np.isfinite(lp.row_lo)].min(initial=0.0) >= -tol
    np.testing.assert_allclose(lp.cost - lp.matrix.T @ sol.row_dual, sol.col_dual, atol=1e-9)


def _same_share_within_groups(pr, plan):
    """The lift splits a merged stream in proportion to what each member asks: equal served shares."""
    rep = merge_groups(pr, pr.streams.eligible)
    d, asked = plan.delivered(), pr.streams.demand
    for s in np.nonzero(rep != np.arange(len(rep)))[0]:
        g = rep[s]
        both = (asked[s] > 0) & (asked[g] > 0)
        np.testing.assert_allclose(d[s][both] / asked[s][both], d[g][both] / asked[g][both], rtol=1e-6, atol=1e-9)


def test_merge_groups_join_identical_services_and_batches_only():
    pr = build_problem(_portfolio(
        [_service("a", [("2026-01-01", 3)]), _service("b", [("2026-01-01", 5)]),
         _service("c", [("2026-01-01", 2)], types={"H100": 1.0, "H200": 1.6})],
        [_batch("x", 2.0), _batch("y", 1.0)]))
    names = list(pr.streams.names)
    rep = merge_groups(pr, pr.streams.eligible)
    at = {n: names[rep[i]] for i, n in enumerate(names)}
    assert at["a@us-east-1"] == at["b@us-east-1"] == "a@us-east-1"
    assert at["c@us-east-1"] == "c@us-east-1"          # other speeds: its own stream
    assert at["x"] == at["y"] == "x"
    assert at["t"] == "t"                               # training streams are never merged
    allow = np.ones((pr.streams.n, len(pr.clusters)), bool)
    allow[names.index("b@us-east-1"), 2] = False        # a restriction (baselines) splits the group again
    assert names[merge_groups(pr, pr.streams.eligible & allow)[names.index("b@us-east-1")]] == "b@us-east-1"


def test_the_reduced_lp_is_smaller_and_solves_to_the_same_plan_cost():
    pr = build_problem(_portfolio([_service("a", [("2026-01-01", 3)]), _service("b", [("2026-01-01", 5)])],
                                  [_batch("x", 2.0), _batch("y", 1.0)]))
    lp, sol, plan = _plan(pr)
    assert lp.reduced is not None and lp.reduced.lp.n_cols < lp.n_cols and lp.reduced.lp.n_rows < lp.n_rows
    _, ref, ref_plan = _plan(pr, merge=False)
    assert lp.n_cols == ref_plan.variables and lp.n_rows == ref_plan.constraints   # the reported size is unchanged
    assert sol.optimal and sol.objective_usd == pytest.approx(ref.objective_usd, rel=1e-9)
    assert plan.gap < 1e-9 and sol.dual_bound_usd == pytest.approx(sol.objective_usd, rel=1e-9)
    assert check_plan(plan, pr) == []
    _dual_feasible(lp, sol)


@pytest.mark.parametrize("ramp_day, domains", [("2026-02-01", (3, 3)), ("2026-02-15", (1, 5))],
                         ids=["identical-periods", "mid-period-ramp"])
def test_each_stream_gets_what_the_unmerged_plan_gives_it_when_capacity_is_ample(ramp_day, domains):
    """Nothing unmet: each member's delivery is determined (= asked), so it must match the reference exactly."""
    svcs = [_service("a", [("2026-01-01", 1), ("2026-02-10", 2)]), _service("b", [("2026-01-01", 2)]),
            _service("c", [("2026-01-01", 0), ("2026-03-01", 1)])]      # c asks nothing before March
    pr = build_problem(_portfolio(svcs, [_batch("x", 2.0), _batch("y", 1.0, start="2026-02-20")],
                                  ramp_day=ramp_day, domains=(domains[0] * 4, domains[1] * 4), training=False))
    _, sol, plan = _plan(pr)
    _, ref, ref_plan = _plan(pr, merge=False)
    assert sol.objective_usd == pytest.approx(ref.objective_usd, rel=1e-9)
    assert ref_plan.unmet.sum() < 1e-6 and plan.unmet.sum() < 1e-6
    np.testing.assert_allclose(plan.delivered(), ref_plan.delivered(), rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(plan.delivered(), pr.streams.demand, rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(plan.use_cp.sum(axis=0), ref_plan.use_cp.sum(axis=0), rtol=1e-7, atol=1e-6)
    assert check_plan(plan, pr) == []


@st.composite
def mergeable_portfolios(draw):
    reps = st.integers(0, 6)
    dates = ["2026-01-01", draw(st.sampled_from(["2026-01-20", "2026-02-01", "2026-02-10"]))]
    svcs = [_service(f"s{i}", [(d, draw(reps)) for d in dates]) for i in range(draw(st.integers(2, 4)))]
    starts = st.sampled_from(["2026-01-01", "2026-02-15"])
    batches = [_batch(f"b{i}", draw(st.sampled_from([0.5, 2.0, 6.0])), start=draw(starts))
               for i in range(draw(st.integers(1, 3)))]
    limits = draw(st.sampled_from([[], [{"workload_class": "inference", "max_share": 0.6}],
                                   [{"workload_class": "all", "max_share": 0.5}]]))
    return _portfolio(svcs, batches, ramp_day=draw(st.sampled_from(["2026-02-01", "2026-02-15"])),
                      domains=(draw(st.integers(0, 3)), draw(st.integers(1, 6))), limits=limits,
                      n1=draw(st.sampled_from([0.0, 0.5])), training=draw(st.booleans()),
                      contracts=draw(st.sampled_from(["commit", "reserved", "none"])))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mergeable_portfolios())
def test_merged_plans_match_the_unmerged_planner_and_the_dense_reference(p):
    pr = build_problem(p)
    lp, sol, plan = _plan(pr)
    _, ref, _ = _plan(pr, merge=False)
    assert sol.optimal and plan.optimal
    assert sol.objective_usd == pytest.approx(ref.objective_usd, rel=1e-7, abs=1e-3)
    assert sol.objective_usd == pytest.approx(reference_lp(p), rel=1e-6, abs=1e-3)
    assert plan.gap < 1e-7
    assert check_plan(plan, pr) == []
    _dual_feasible(lp, sol)
    _same_share_within_groups(pr, plan)


def test_bench_portfolio_same_optimum_with_every_solver_path():
    bench = _bench()
    pr = build_problem(bench.synthetic(32, 12, 7, 0))
    lp, sol, plan = _plan(pr)
    assert lp.reduced is not None
    _, ref, _ = _plan(pr, merge=False)
    _, ipm, _ = _plan(pr, options={"solver": "ipm"})
    _, dual, _ = _plan(pr, options={"simplex_strategy": 1})
    for other in (ref, ipm, dual):
        assert other.optimal and other.objective_usd == pytest.approx(sol.objective_usd, rel=1e-7)
    assert sol.gap <= 1e-4 and np.isfinite(sol.dual_bound_usd)
    assert check_plan(plan, pr) == []
    _dual_feasible(lp, sol)
    _same_share_within_groups(pr, plan)


def test_frontier_lab_example_is_unchanged():
    from gpufleet.cli.common import example_path, scenario_or_exit

    pr = build_problem(scenario_or_exit(example_path("frontier-lab.yaml")))
    lp, sol, plan = _plan(pr)
    _, ref, ref_plan = _plan(pr, merge=False)
    assert lp.reduced is not None
    assert sol.objective_usd == pytest.approx(ref.objective_usd, rel=1e-9)
    assert sol.objective_usd == pytest.approx(133_706_483_072, rel=1e-6)      # docs/planning.md
    np.testing.assert_allclose(plan.unmet.sum() + plan.unmet_budget.sum(),
                               ref_plan.unmet.sum() + ref_plan.unmet_budget.sum(), rtol=1e-6)
    assert check_plan(plan, pr) == []


@pytest.mark.parametrize("merge", [True, False], ids=["merged", "unmerged"])
def test_a_warm_start_changes_the_time_not_the_answer(merge):
    """solve(..., start=previous): the previous basis, matched by meaning, starts the simplex."""
    import dataclasses
    from datetime import date

    p = _bench().synthetic(32, 12, 7, 0)
    pr = build_problem(p)
    lp = build_lp(pr, BuildOptions(merge=merge))
    base = solve(lp, time.perf_counter)
    assert base.basis is not None
    again = solve(lp, time.perf_counter, start=base)            # its own optimal basis: nothing left to do
    assert again.iterations == 0 and again.objective_usd == pytest.approx(base.objective_usd, rel=1e-12)
    later = build_problem(p, start=date(2026, 3, 1))             # the monthly re-plan, two months on
    st_ = later.streams
    more = dataclasses.replace(later, streams=dataclasses.replace(st_, demand=st_.demand * 1.1))
    for variant in (later, more):
        vlp = build_lp(variant, BuildOptions(merge=merge))
        cold = solve(vlp, time.perf_counter)
        warm = solve(vlp, time.perf_counter, start=base)
        assert warm.optimal and warm.objective_usd == pytest.approx(cold.objective_usd, rel=1e-9)
        assert warm.gap < 1e-9
        assert check_plan(extract(variant, vlp, warm, 0.0), variant) == []


def test_by_default_only_large_lps_are_merged(monkeypatch):
    """Small plans (the examples) stay the very plans they were; large ones take the merged path."""
    from gpufleet.cli.common import example_path, scenario_or_exit
    from gpufleet.planning import model

    pr = build_problem(scenario_or_exit(example_path("frontier-lab.yaml")))
    assert build_lp(pr).n_cols < model.MERGE_FROM_COLS and build_lp(pr).reduced is None
    monkeypatch.setattr(model, "MERGE_FROM_COLS", 0)
    assert build_lp(pr).reduced is not None
    assert build_lp(pr, BuildOptions(merge=False)).reduced is None
