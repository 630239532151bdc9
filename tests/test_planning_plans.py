"""Plans of the example portfolios keep every promise, beat the baselines, and explain themselves."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
import pytest

from builders import a_cluster, a_portfolio
from gpufleet.files import load_scenario
from gpufleet.planning.baselines import baselines_doc, greedy_list_price, single_provider
from gpufleet.planning.check import check_plan
from gpufleet.planning.planner import solve_problem
from gpufleet.planning.problem import build_problem
from gpufleet.planning.result import plan_doc
from gpufleet.planning.shadow import gpu_month_value
from gpufleet.planning.whatif import WhatIfError, apply_what_if, compare, parse_what_if

JAN = {"start": "2026-01-01", "end": "2026-02-01"}     # 744 hours


@pytest.fixture(scope="module", params=["small.yaml", "frontier-lab.yaml"])
def example(request):
    from conftest import EXAMPLES
    p = load_scenario(str(EXAMPLES / request.param))
    pr = build_problem(p)
    return p, pr, solve_problem(pr)


def test_example_plans_are_optimal_and_keep_every_promise(example):
    _, pr, plan = example
    assert plan.status == "optimal" and plan.gap < 1e-7
    assert check_plan(plan, pr) == []


def test_example_plans_never_cost_more_than_either_baseline(example):
    _, pr, plan = example
    tol = 1e-7 * plan.objective_usd
    assert plan.objective_usd <= greedy_list_price(pr).objective_usd + tol
    _, single, by_provider = single_provider(pr)
    assert plan.objective_usd <= single.objective_usd + tol
    assert single.objective_usd == min(by_provider.values())


def test_plan_document_has_the_documented_keys(example):
    _, pr, plan = example
    doc = plan_doc(plan, pr)
    for key in ("status", "objective_usd", "periods", "per_contract", "unmet", "shadow_prices", "solve_s",
                "build_s", "variables", "constraints", "per_provider", "cost", "binding", "gap"):
        assert key in doc
    assert doc["cost"]["total_usd"] == pytest.approx(doc["objective_usd"], rel=1e-9)
    n = len(doc["periods"])
    for v in doc["per_provider"].values():
        assert len(v["gpu_hours"]) == n and len(v["capacity_gpu_hours"]) == n
    for row in doc["per_contract"]:
        assert {"contract", "kind", "provider", "used_gpu_hours", "wasted_usd", "overage_usd"} <= set(row)
    asked = sum(s["asked_gpu_hours"] for s in doc["per_stream"])
    served = sum(s["delivered_gpu_hours"] for s in doc["per_stream"])
    assert served + doc["unmet"]["total_gpu_hours"] == pytest.approx(asked, rel=1e-6)


def test_capacity_is_the_ramp_averaged_over_each_month():
    from conftest import EXAMPLES
    p = load_scenario(str(EXAMPLES / "small.yaml"))
    pr = build_problem(p)
    c = pr.clusters.index("aws-use1-gb200")
    for i, (a, b) in enumerate(zip(pr.periods.bounds, pr.periods.bounds[1:])):
        days = [a + timedelta(d) for d in range((b - a).days)]
        assert pr.capacity[c, i] == pytest.approx(sum(p.clusters["aws-use1-gb200"].gpus_at(d) for d in days) * 24)


def test_from_to_and_quarters_shape_the_periods():
    from conftest import EXAMPLES
    p = load_scenario(str(EXAMPLES / "small.yaml"))
    pr = build_problem(p, date(2026, 3, 15), date(2026, 9, 1), months_per_period=3)
    assert pr.periods.bounds == (date(2026, 3, 15), date(2026, 6, 1), date(2026, 9, 1))
    plan = solve_problem(pr)
    assert plan.optimal and check_plan(plan, pr) == []


# -- shadow prices: hand-solvable, and equal to re-solving with one more unit ---------------------------------
def a_batch(name="b", per_day=1.0):
    return {"kind": "batch", "name": name, "gpus": 8, "gpu_types": {"H100": 1.0}, "jobs_per_day": per_day,
            "duration_s": 86400.0, "start": "2026-01-01", "end": "2027-01-01"}


def two_providers(limits=(), cheap_domains=10):
    return a_portfolio(a_cluster("cheap", provider="aws", domains=cheap_domains, price_per_gpu_hour=1.0),
                       a_cluster("dear", provider="oci", region="us-ashburn-1", domains=100, price_per_gpu_hour=3.0),
                       limits=list(limits), workloads=[a_batch(per_day=20.0)], **JAN)   # 160 GPUs all month


def test_capacity_shadow_price_is_what_one_more_gpu_month_saves():
    pr = build_problem(two_providers())
    plan = solve_problem(pr)
    v = gpu_month_value(plan, pr)
    assert v[pr.clusters.index("cheap"), 0] == pytest.approx(2.0 * 744)     # $3 − $1 per GPU-hour, 744 h
    assert v[pr.clusters.index("dear"), 0] == pytest.approx(0.0)
    more = pr.capacity.copy()
    more[0, 0] += 744.0
    again = solve_problem(dataclasses.replace(pr, capacity=more))
    assert plan.objective_usd - again.objective_usd == pytest.approx(v[0, 0])


def test_cap_shadow_price_is_what_one_more_point_saves():
    pr = build_problem(two_providers([{"workload_class": "batch", "max_share": 0.6}], cheap_domains=100))
    plan = solve_problem(pr)
    doc = plan_doc(plan, pr)
    (cap,) = doc["shadow_prices"]["concentration_caps"]
    assert cap["saves_usd_per_point"] == pytest.approx(0.01 * 160 * 744 * 2.0)
    looser = dataclasses.replace(pr, limits=(dataclasses.replace(pr.limits[0], max_share=0.61),))
    assert plan.objective_usd - solve_problem(looser).objective_usd == pytest.approx(cap["saves_usd_per_point"])


def test_n1_shadow_price_matches_a_small_change_of_the_fraction():
    inf = {"kind": "inference", "name": "svc", "gpus_per_replica": 1, "gpu_types": {"H100": 1.0},
           "demand": [{"date": "2026-01-01", "replicas": {"us-east-1": 1000}}]}
    p = a_portfolio(a_cluster("a", provider="aws", domains=200, price_per_gpu_hour=1.0),
                    a_cluster("o", provider="oci", region="us-ashburn-1", domains=37, price_per_gpu_hour=1.0),
                    workloads=[inf], **JAN, policies={"n1_fraction": 0.5, "critical_classes": ["inference"]})
    pr = build_problem(p)
    plan = solve_problem(pr)
    per_point = plan_doc(plan, pr)["shadow_prices"]["n1"]["costs_usd_per_point"]
    assert per_point > 0
    h = 1e-4
    dearer = solve_problem(dataclasses.replace(pr, n1_fraction=0.5 + h))
    assert (dearer.objective_usd - plan.objective_usd) / (h * 100) == pytest.approx(per_point, rel=1e-3)


def test_binding_constraints_name_the_full_cluster():
    pr = build_problem(two_providers())
    doc = plan_doc(solve_problem(pr), pr)
    assert doc["binding"]["counts"] == {"capacity": 1}
    assert doc["binding"]["top"][0]["cluster"] == "cheap"


# -- what-ifs ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    from conftest import EXAMPLES
    pr = build_problem(load_scenario(str(EXAMPLES / "small.yaml")))
    return pr, solve_problem(pr)


def test_drop_provider_removes_its_capacity_but_keeps_its_contracts(small):
    pr, base = small
    variant = apply_what_if(pr, parse_what_if("drop:aws", pr))
    plan = solve_problem(variant)
    assert check_plan(plan, variant) == []
    assert plan.provider_use()[pr.providers.index("aws")].sum() == 0
    doc = compare("drop:aws", base, plan)
    assert doc["delta_usd"] > 0 and doc["delta_unmet_gpu_hours"] > 0
    assert doc["gpu_hours_by_provider"]["aws"] == 0


def test_delay_shifts_the_ramp_by_whole_months(small):
    pr, _ = small
    c = pr.clusters.index("aws-use1-gb200")
    late = apply_what_if(pr, parse_what_if("delay:aws-use1-gb200:2", pr))
    assert late.capacity[c, :2].sum() == 0
    assert late.capacity[c, 2] == pytest.approx(pr.capacity[c, 0])   # March at January's level (31 days)
    assert late.capacity[c, -1] == pytest.approx(pr.capacity[c, -1])


def test_demand_and_cap_what_ifs(small):
    pr, base = small
    more = apply_what_if(pr, parse_what_if("demand:*:1.5", pr))
    assert more.streams.asked().sum() == pytest.approx(1.5 * pr.streams.asked().sum())
    inf = apply_what_if(pr, parse_what_if("demand:inference:0", pr))
    assert inf.streams.demand[inf.streams.kind_mask(frozenset(["inference"]))].sum() == 0
    capped = apply_what_if(pr, parse_what_if("cap:inference:40%", pr))
    assert [(lim.label, lim.max_share) for lim in capped.limits] == [("inference", 0.4)]
    plan = solve_problem(capped)
    assert check_plan(plan, capped) == [] and plan.objective_usd >= base.objective_usd


@pytest.mark.parametrize("spec, words", [
    ("drop:nobody", "unknown provider 'nobody'"), ("delay:aws-use1-gb200:x", "must be a number"),
    ("delay:nowhere:2", "unknown cluster"), ("delay:aws-use1-gb200:1.5", "whole number"),
    ("demand:gpus:2", "not a workload class"), ("demand:*:-1", "0 or more"), ("cap:inference:1.5", "(0, 1]"),
    ("cap:chat:0.5", "unknown class"), ("grow:aws", "unknown what-if"), ("drop", "expected drop:PROVIDER"),
    ("cap:all", "expected cap:CLASS:SHARE")])
def test_bad_what_if_specs_say_what_was_expected(small, spec, words):
    pr, _ = small
    with pytest.raises(WhatIfError) as e:
        parse_what_if(spec, pr)
    assert words in str(e.value)


def test_baselines_document(small):
    pr, plan = small
    doc = baselines_doc(plan, pr)
    assert doc["greedy_list_price"]["saving_usd"] >= 0 and doc["single_provider"]["saving_usd"] >= 0
    assert doc["single_provider"]["provider"] in pr.providers
    assert np.isfinite(doc["greedy_list_price"]["objective_usd"])
