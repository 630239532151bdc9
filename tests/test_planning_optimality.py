"""The planner is optimal: hand-solvable cases, and random small portfolios solved a second way.

The second way is `reference_lp`: a dense LP written independently of gpufleet.planning, straight from the
scenario objects with loops over days, and solved with scipy.optimize.linprog. Both must agree on the optimum;
the planner's cost must be at least the dual bound (and equal to it: an LP solved to optimality).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from builders import a_cluster, a_contract, a_portfolio
from gpufleet.model.contracts import OnDemand, ReservedCapacity, SpendCommitment
from gpufleet.model.workloads import BatchWorkload, InferenceWorkload, TrainingWorkload
from gpufleet.planning.baselines import greedy_list_price, single_provider
from gpufleet.planning.check import check_plan
from gpufleet.planning.planner import solve_problem
from gpufleet.planning.problem import build_problem

H = 24.0


# -- the second formulation -----------------------------------------------------------------------------
def _months(a: date, b: date) -> list[tuple[date, date]]:
    out, d = [], a
    while d < b:
        nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
        out.append((d, min(nxt, b)))
        d = nxt
    return out


def _days(a: date, b: date, lo: date, hi: date) -> int:
    return max(0, (min(b, hi) - max(a, lo)).days)


def _streams(p, months):
    """(name, kind, ok(cluster) -> speed, demand per month or None, budget, window months, gang cap per month)."""
    out = []
    for w in p.workloads:
        def speed(c, w=w, group=None, extra=lambda c: True):
            ok = (c.gpu.name in w.gpu_types and c.usable_gpus_per_domain >= group and extra(c)
                  and (w.providers is None or c.provider in w.providers)
                  and (w.regions is None or c.region in w.regions or c.area in w.regions))
            return w.gpu_types[c.gpu.name] if ok else 0.0
        if isinstance(w, TrainingWorkload):
            end = w.deadline or p.end
            inside = sum(_days(w.start, end, a, b) for a, b in months)
            budget = w.work_gpu_hours * w.runs * inside / (end - w.start).days
            gang = [w.gpus * H * _days(w.start, end, a, b) for a, b in months]
            out.append((w.name, "training", lambda c, w=w, s=speed: s(c, w, w.tp, lambda c: c.max_gang_gpus >= w.gpus),
                        None, budget, gang))
        elif isinstance(w, InferenceWorkload):
            for key in dict.fromkeys(k for d in w.demand for k in d.replicas):
                def reps(day, w=w, key=key):
                    pts = [d for d in w.demand if d.date <= day]
                    return pts[-1].replicas.get(key, 0) if pts else 0
                dem = [sum(reps(a + timedelta(i)) for i in range((b - a).days)) * H * w.gpus_per_replica
                       for a, b in months]
                out.append((f"{w.name}@{key}", "inference",
                            lambda c, w=w, key=key, s=speed: s(c, w, w.replica_tp, lambda c: key in (c.region, c.area)),
                            dem, 0.0, None))
        else:
            assert isinstance(w, BatchWorkload)
            dem = [_days(w.start, w.end, a, b) * w.jobs_per_day * w.gpus * w.duration_s / 3600 for a, b in months]
            out.append((w.name, "batch", lambda c, w=w, s=speed: s(c, w, w.gpus), dem, 0.0, None))
    return out


def reference_lp(p, penalty: float = 100.0) -> float:
    """The optimum, from a dense formulation written without gpufleet.planning."""
    months = _months(p.start, p.end)
    P, cl = len(months), list(p.clusters.values())
    C = len(cl)
    cap = [[sum(c.gpus_at(a + timedelta(i)) for i in range((b - a).days)) * H for a, b in months] for c in cl]
    streams = _streams(p, months)
    provs = sorted({c.provider for c in cl})
    names = []
    idx: dict[tuple, int] = {}

    def var(key):
        idx[key] = len(names)
        names.append(key)
    for s in range(len(streams)):
        for c in range(C):
            for t in range(P):
                var(("x", s, c, t))
        for t in range(P) if streams[s][3] is not None else [None]:
            var(("u", s, t))
    for c in range(C):
        for t in range(P):
            var(("b", c, t))
    reserved = [k for k in p.contracts if isinstance(k, ReservedCapacity) or
                (isinstance(k, SpendCommitment) and k.expansions)]
    for k in reserved:
        for c in k.clusters:
            for t in range(P):
                var(("r", k.name, c, t))
        for e in range(len(k.expansions)):
            var(("o", k.name, e))
    commits = [k for k in p.contracts if isinstance(k, SpendCommitment)]
    for k in commits:
        var(("short", k.name))
    n = len(names)
    cost, ub = np.zeros(n), np.full(n, np.inf)
    Aeq, beq, Aub, bub = [], [], [], []

    def row():
        return np.zeros(n)
    # billing source per (cluster, month), by the midpoint
    rate, owner = np.zeros((C, P)), {}
    for c, cc in enumerate(cl):
        for t, (a, b) in enumerate(months):
            mid = a + (b - a) / 2
            live = [k for k in p.contracts if cc.name in k.clusters and k.start <= mid < k.end]
            com = [k for k in live if isinstance(k, SpendCommitment)]
            od = [k.discount for k in live if isinstance(k, OnDemand)]
            if com:
                rate[c, t], owner[(c, t)] = com[0].rate_for(cc.name), com[0].name
            else:
                rate[c, t] = cc.price_per_gpu_hour * (1 - max(od, default=0.0))
            cost[idx[("b", c, t)]] = rate[c, t]
    for s, (_, kind, speed, dem, budget, gang) in enumerate(streams):
        for c, cc in enumerate(cl):
            for t in range(P):
                window = (dem[t] > 0) if dem is not None else gang[t] > 0
                if speed(cc) == 0 or not window:
                    ub[idx[("x", s, c, t)]] = 0.0
        if dem is not None:
            for t in range(P):
                r = row()
                r[idx[("u", s, t)]] = 1
                for c, cc in enumerate(cl):
                    r[idx[("x", s, c, t)]] = speed(cc)
                cost[idx[("u", s, t)]] = penalty
                Aeq.append(r), beq.append(dem[t])
        else:
            r = row()
            r[idx[("u", s, None)]] = 1
            cost[idx[("u", s, None)]] = penalty
            for c, cc in enumerate(cl):
                for t in range(P):
                    r[idx[("x", s, c, t)]] = speed(cc)
            Aeq.append(r), beq.append(budget)
            for t in range(P):
                r = row()
                for c in range(C):
                    r[idx[("x", s, c, t)]] = 1
                Aub.append(r), bub.append(gang[t])
    for c, cc in enumerate(cl):
        for t in range(P):
            r = row()
            for s in range(len(streams)):
                r[idx[("x", s, c, t)]] = 1
            Aub.append(r.copy()), bub.append(cap[c][t])
            r[idx[("b", c, t)]] = -1
            for k in reserved:
                if cc.name in k.clusters:
                    r[idx[("r", k.name, cc.name, t)]] = -1
            Aeq.append(r), beq.append(0.0)
    const = 0.0
    for k in reserved:
        for t, (a, b) in enumerate(months):
            base = k.gpus * H * _days(k.start, k.end, a, b) if isinstance(k, ReservedCapacity) else 0.0
            const += base * k.price_per_gpu_hour
            r = row()
            for c in k.clusters:
                r[idx[("r", k.name, c, t)]] = 1
            for e, ex in enumerate(k.expansions):
                r[idx[("o", k.name, e)]] = -H * _days(max(ex.start, k.start), k.end, a, b)
            Aub.append(r), bub.append(base)
        for e, ex in enumerate(k.expansions):
            ub[idx[("o", k.name, e)]] = ex.gpus
            cost[idx[("o", k.name, e)]] = ex.price_per_gpu_hour * H * sum(
                _days(max(ex.start, k.start), k.end, a, b) for a, b in months)
    for k in commits:
        r = row()
        r[idx[("short", k.name)]] = -1
        cost[idx[("short", k.name)]] = 1
        for (c, t), name in owner.items():
            if name == k.name:
                r[idx[("b", c, t)]] = -rate[c, t]
        Aub.append(r), bub.append(-k.commitment_usd * _days(k.start, k.end, p.start, p.end) / (k.end - k.start).days)

    def use(t, classes, q=None):
        r = row()
        for s, st_ in enumerate(streams):
            if st_[1] in classes:
                for c, cc in enumerate(cl):
                    if q is None or cc.provider == q:
                        r[idx[("x", s, c, t)]] = 1
        return r
    for lim in p.policies.concentration_limits:
        classes = {"training", "inference", "batch"} if lim.workload_class == "all" else {lim.workload_class}
        for q in provs if lim.provider is None else [lim.provider]:
            for t in range(P):
                Aub.append(use(t, classes, q) - lim.max_share * use(t, classes)), bub.append(0.0)
    f, crit = p.policies.n1_fraction, set(p.policies.critical_classes)
    if f > 0 and crit and len(provs) > 1:
        for q in provs:
            for t in range(P):
                others = [c for c, cc in enumerate(cl) if cc.provider != q]
                r = f * use(t, crit, q)
                for o in provs:
                    if o != q:
                        r = r + use(t, {"training", "inference", "batch"}, o)
                Aub.append(r), bub.append(sum(cap[c][t] for c in others))
    res = linprog(cost, A_ub=np.array(Aub) if Aub else None, b_ub=bub or None,
                  A_eq=np.array(Aeq) if Aeq else None, b_eq=beq or None,
                  bounds=list(zip(np.zeros(n), ub)), method="highs")
    assert res.status == 0, res.message
    return float(res.fun) + const


# -- hand-solvable cases --------------------------------------------------------------------------------
JAN = {"start": "2026-01-01", "end": "2026-02-01"}     # 31 days = 744 hours


def a_batch(name="b", gpus=8, per_day=1.0, hours=24.0, types=None, **more):
    return {"kind": "batch", "name": name, "gpus": gpus, "gpu_types": types or {"H100": 1.0},
            "jobs_per_day": per_day, "duration_s": hours * 3600, "start": "2026-01-01", "end": "2027-01-01", **more}


def plan_of(portfolio, **kw):
    pr = build_problem(portfolio, **kw)
    plan = solve_problem(pr)
    assert plan.optimal and check_plan(plan, pr) == []
    return plan, pr


def test_on_demand_work_costs_list_price_times_gpu_hours():
    p = a_portfolio(a_cluster("c1", domains=2, price_per_gpu_hour=2.0), workloads=[a_batch(gpus=8)], **JAN)
    plan, _ = plan_of(p)
    assert plan.objective_usd == pytest.approx(8 * 744 * 2.0)


def test_spend_commitment_costs_the_larger_of_commitment_and_drawn():
    k = a_contract("k", "spend_commitment", commitment_usd=10_000.0, price_per_gpu_hour=1.0, **JAN)
    small = a_portfolio(a_cluster("c1", price_per_gpu_hour=9.0), contracts=[k], workloads=[a_batch(gpus=8)], **JAN)
    plan, pr = plan_of(small)                  # draws 5,952 < 10,000: the commitment is owed, 4,048 wasted
    assert plan.objective_usd == pytest.approx(10_000.0)
    assert plan.shortfall_usd[0] == pytest.approx(10_000.0 - 5952.0)
    big = a_portfolio(a_cluster("c1", price_per_gpu_hour=9.0), contracts=[k],
                      workloads=[a_batch(gpus=8), a_batch("b2", gpus=8)], **JAN)
    plan, _ = plan_of(big)                     # draws 11,904 > 10,000: overage at the contract rate
    assert plan.objective_usd == pytest.approx(11_904.0)


def test_reserved_capacity_is_paid_whether_used_or_not_and_overflow_pays_list():
    k = a_contract("r", "reserved_capacity", gpus=8, price_per_gpu_hour=1.0, **JAN)
    idle = a_portfolio(a_cluster("c1", price_per_gpu_hour=5.0), contracts=[k], **JAN)
    assert plan_of(idle)[0].objective_usd == pytest.approx(8 * 744 * 1.0)
    over = a_portfolio(a_cluster("c1", price_per_gpu_hour=5.0), contracts=[k], workloads=[a_batch(gpus=8, per_day=2.0)], **JAN)
    assert plan_of(over)[0].objective_usd == pytest.approx(8 * 744 * 1.0 + 8 * 744 * 5.0)


def test_expansion_option_is_bought_when_cheaper_than_list():
    k = a_contract("r", "reserved_capacity", gpus=8, price_per_gpu_hour=1.0,
                   expansions=[{"start": "2026-01-01", "gpus": 8, "price_per_gpu_hour": 2.0}], **JAN)
    p = a_portfolio(a_cluster("c1", price_per_gpu_hour=5.0), contracts=[k], workloads=[a_batch(gpus=8, per_day=2.0)], **JAN)
    plan, _ = plan_of(p)
    assert plan.options_gpus[0] == pytest.approx(8.0)
    assert plan.objective_usd == pytest.approx(8 * 744 * 1.0 + 8 * 744 * 2.0)


def test_concentration_cap_splits_work_at_the_share():
    limits = [{"workload_class": "batch", "max_share": 0.6}]
    p = a_portfolio(a_cluster("a", provider="aws", domains=10, price_per_gpu_hour=1.0),
                    a_cluster("o", provider="oci", domains=10, price_per_gpu_hour=3.0),
                    limits=limits, workloads=[a_batch(gpus=8, per_day=1.25)], **JAN)
    plan, pr = plan_of(p)
    total = 10 * 744.0
    assert plan.provider_use()[pr.providers.index("aws")].sum() == pytest.approx(0.6 * total)
    assert plan.objective_usd == pytest.approx(0.6 * total * 1.0 + 0.4 * total * 3.0)


def test_n1_keeps_spare_capacity_elsewhere_for_critical_work():
    # Inference only fits aws (region); oci has 300 GPUs. Losing aws, oci's spare must cover half of aws's
    # inference: at most 600 GPUs may run there, the rest is unmet.
    inf = {"kind": "inference", "name": "svc", "gpus_per_replica": 1, "gpu_types": {"H100": 1.0},
           "demand": [{"date": "2026-01-01", "replicas": {"us-east-1": 1000}}]}
    p = a_portfolio(a_cluster("a", provider="aws", region="us-east-1", domains=200, price_per_gpu_hour=1.0),
                    a_cluster("o", provider="oci", region="us-ashburn-1", domains=37, price_per_gpu_hour=1.0),
                    workloads=[inf], **JAN, policies={"n1_fraction": 0.5, "critical_classes": ["inference"]})
    plan, pr = plan_of(p)
    spare = 37 * 8 * 744.0                      # 296 GPUs at oci
    served = plan.provider_use()[pr.providers.index("aws")].sum()
    assert served == pytest.approx(2 * spare)
    assert plan.unmet.sum() == pytest.approx(1000 * 744.0 - 2 * spare)


def test_training_budget_speed_and_gang_fit():
    t = {"kind": "training", "name": "t", "gpus": 16, "tp": 8, "gpu_types": {"H100": 1.0, "H200": 2.0},
         "work_gpu_hours": 2000.0, "start": "2026-01-01"}
    p = a_portfolio(a_cluster("h100", domains=4, price_per_gpu_hour=1.0),
                    a_cluster("h200", gpu="H200", domains=4, price_per_gpu_hour=1.5),
                    a_cluster("tiny", gpu="H200", domains=1, price_per_gpu_hour=0.1),   # 8 GPUs: gang never fits
                    workloads=[t], **JAN)
    plan, pr = plan_of(p)
    assert plan.usage[0, pr.clusters.index("tiny")].sum() == 0
    assert plan.objective_usd == pytest.approx(1000 * 1.5)      # H200 at 2x speed: 1,000 GPU-hours at $1.50


def test_unmet_demand_is_reported_at_the_stated_penalty():
    p = a_portfolio(a_cluster("c1", domains=1, price_per_gpu_hour=1.0), workloads=[a_batch(gpus=8, per_day=2.0)], **JAN)
    pr = build_problem(p, unmet_penalty=50.0)
    plan = solve_problem(pr)
    assert plan.unmet.sum() == pytest.approx(8 * 744.0)
    assert plan.objective_usd == pytest.approx(8 * 744 * 1.0 + 8 * 744 * 50.0)


# -- random small portfolios: two formulations agree --------------------------------------------------------
PROVS = [("aws", "us-east-1"), ("oci", "us-east-1"), ("lambda", "us-west-1")]


@st.composite
def small_portfolios(draw):
    n = draw(st.integers(2, 3))
    clusters = []
    for i in range(n):
        prov, region = PROVS[i]
        ramp = [{"date": "2026-01-01", "domains": draw(st.integers(0, 4))},
                {"date": draw(st.sampled_from(["2026-01-15", "2026-02-01", "2026-02-20"])),
                 "domains": draw(st.integers(2, 6))}]
        clusters.append(a_cluster(f"c{i}", provider=prov, region=region, gpu=draw(st.sampled_from(["H100", "H200"])),
                                  ramp=ramp, price_per_gpu_hour=draw(st.sampled_from([1.0, 2.5, 4.0]))))
    contracts = []
    kind = draw(st.sampled_from(["none", "spend_commitment", "reserved_capacity", "on_demand"]))
    if kind == "spend_commitment":
        contracts.append(a_contract("k", kind, provider="aws", clusters=("c0",), end="2026-06-01",
                                    commitment_usd=draw(st.sampled_from([2000.0, 20000.0, 80000.0])),
                                    price_per_gpu_hour=draw(st.sampled_from([0.5, 1.5]))))
    elif kind == "reserved_capacity":
        contracts.append(a_contract("k", kind, provider="oci", clusters=("c1",), gpus=8, price_per_gpu_hour=0.8,
                                    expansions=[{"start": "2026-02-01", "gpus": 8, "price_per_gpu_hour": 1.2}]))
    elif kind == "on_demand":
        contracts.append(a_contract("k", kind, provider="aws", clusters=("c0",), discount=0.3))
    types = {"H100": 1.0, "H200": draw(st.sampled_from([1.0, 1.4]))}
    workloads = [a_batch("b", gpus=8, per_day=draw(st.sampled_from([1.0, 3.0, 8.0])), types=types)]
    if draw(st.booleans()):
        workloads.append({"kind": "inference", "name": "svc", "gpus_per_replica": 8, "gpu_types": types,
                          "demand": [{"date": "2026-01-01", "replicas": {"us-east-1": draw(st.integers(1, 4))}},
                                     {"date": "2026-02-10", "replicas": {"us-east-1": draw(st.integers(0, 6))}}]})
    if draw(st.booleans()):
        workloads.append({"kind": "training", "name": "t", "gpus": 16, "tp": 8, "gpu_types": types,
                          "work_gpu_hours": draw(st.sampled_from([5000.0, 30000.0])), "start": "2026-01-10",
                          "deadline": "2026-03-01"})
    limits = draw(st.sampled_from([[], [{"workload_class": "all", "max_share": 0.7}],
                                   [{"workload_class": "batch", "max_share": 0.5, "provider": "aws"}]]))
    policies = {"concentration_limits": limits, "n1_fraction": draw(st.sampled_from([0.0, 0.5])),
                "critical_classes": ["inference"]}
    return a_portfolio(*clusters, contracts=contracts, workloads=workloads, start="2026-01-01", end="2026-03-01",
                       policies=policies)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_portfolios())
def test_plan_matches_an_independent_dense_formulation(p):
    pr = build_problem(p)
    plan = solve_problem(pr)
    assert plan.optimal
    assert check_plan(plan, pr) == []
    ref = reference_lp(p)
    assert plan.objective_usd == pytest.approx(ref, rel=1e-6, abs=1e-3)
    assert plan.objective_usd >= plan.dual_bound_usd - 1e-6 * max(1.0, abs(plan.objective_usd))
    assert plan.gap < 1e-7
    greedy = greedy_list_price(pr)
    assert plan.objective_usd <= greedy.objective_usd * (1 + 1e-7) + 1e-3
    if not pr.limits:       # the single-provider baseline drops caps: comparable when there are none
        _, single, _ = single_provider(pr)
        assert plan.objective_usd <= single.objective_usd * (1 + 1e-7) + 1e-3
