"""The placement engine, read as a spec: filters reject with numbers, scorers rank, commits are exact."""

import pytest

from builders import a_cluster, a_contract, a_portfolio, a_request, an_engine


def nvl72(name="gb", provider="aws", domains=4, **kw):
    return a_cluster(name, provider=provider, gpu="GB200", domains=domains, **kw)


def test_places_a_gang_in_whole_domains_of_one_cluster():
    e = an_engine(a_portfolio(nvl72(domains=4)))
    d, a = e.place(a_request("g", 216, 72, types=("GB200",)))
    assert d.placed and a.cluster == "gb"
    assert sorted(n for _, n in a.parts) == [72, 72, 72]
    assert len({dom for dom, _ in a.parts}) == 3


def test_tensor_parallel_group_never_split_across_domains():
    e = an_engine(a_portfolio(nvl72(domains=2)))
    e.place(a_request("small", 40, 40, types=("GB200",)))   # leaves 32 + 72 free
    d = e.decide(a_request("big", 72 * 2, 72, types=("GB200",)))
    assert not d.placed
    assert "needs 2 group(s) of 72 GPUs" in d.reason and "1 free now" in d.reason


def test_best_fit_fills_partly_used_domains_first():
    e = an_engine(a_portfolio(nvl72(domains=3)))
    _, a1 = e.place(a_request("a", 8, 8, types=("GB200",)))
    _, a2 = e.place(a_request("b", 8, 8, types=("GB200",)))
    assert a1.parts[0][0] == a2.parts[0][0]  # same rack, the others stay whole
    assert e.state.by_name["gb"].domains.count_groups(72, 99) == 2


@pytest.mark.parametrize("req, filt, words", [
    (dict(types=("H100",)), "gpu_type", "GPU type GB200 is not among the allowed H100"),
    (dict(gpus=144, group=144, types=("GB200",)), "topology", "cannot sit in one NVLink domain of 72"),
    (dict(gpus=72 * 5, group=72, types=("GB200",)), "topology", "exceeds this cluster's fabric"),
    (dict(types=("GB200",), providers=frozenset({"azure"})), "region_provider", "provider aws is not allowed"),
    (dict(types=("GB200",), regions=frozenset({"eu-west-1"})), "region_provider", "region us-east-1 (area us-east-1) is not allowed"),
])
def test_static_filters_reject_with_reasons(req, filt, words):
    e = an_engine(a_portfolio(nvl72(domains=4)))
    d = e.decide(a_request("x", **{"gpus": 1, **req}), explain=True)
    assert not d.placed
    (v,) = d.verdicts
    assert v.rejected.filter == filt and words in v.rejected.message
    assert "no cluster can ever take it" in d.reason


def test_capacity_follows_the_ramp():
    p = a_portfolio(a_cluster("h", ramp=[{"date": "2026-01-01", "domains": 1}, {"date": "2026-07-01", "domains": 4}]))
    early = an_engine(p, at="2026-02-01")
    assert not early.decide(a_request("x", 16, 8)).placed
    late = an_engine(p, at="2026-07-02")
    assert late.decide(a_request("x", 16, 8)).placed


def test_ramp_down_reports_allocations_on_vanished_domains():
    p = a_portfolio(a_cluster("h", ramp=[{"date": "2026-01-01", "domains": 4}, {"date": "2026-08-01", "domains": 1}]))
    e = an_engine(p, at="2026-02-01")
    for i in range(4):
        e.place(a_request(f"j{i}", 8, 8))
    from gpufleet.placement.state import to_seconds
    from datetime import date
    lost = e.set_time(to_seconds(date(2026, 8, 2)))
    assert len(lost) == 3


def test_health_filter_and_failures_report_affected_work():
    e = an_engine(a_portfolio(a_cluster("a", provider="aws"), a_cluster("b", provider="oci")))
    _, a = e.place(a_request("j", 8, 8))
    assert e.fail_provider(a.provider) == ["j"]
    e.release("j")
    d = e.decide(a_request("k", 8, 8), explain=True)
    assert d.cluster != a.cluster
    down = next(v for v in d.verdicts if v.cluster == a.cluster)
    assert down.rejected.filter == "health"
    e.repair_provider(a.provider)
    assert e.fail_domain("b", 0) == []
    assert e.state.by_name["b"].capacity == 3 * 8


def test_domain_failure_takes_the_domain_out_until_repaired():
    e = an_engine(a_portfolio(a_cluster("a", domains=1)))
    _, a = e.place(a_request("j", 4, 4))
    assert e.fail_domain("a", a.parts[0][0]) == ["j"]
    e.release("j")
    assert not e.decide(a_request("k", 1, 1)).placed
    e.repair_domain("a", a.parts[0][0])
    assert e.decide(a_request("k", 8, 8)).placed


def test_commit_and_release_are_idempotent_and_exact():
    e = an_engine(a_portfolio(nvl72(domains=3)))
    before = list(e.state.by_name["gb"].domains.free)
    d = e.decide(a_request("g", 144, 72, types=("GB200",)))
    a1 = e.commit(d)
    assert e.commit(d) is a1  # committing twice changes nothing
    assert e.release("g") is a1
    assert e.release("g") is None
    assert e.state.by_name["gb"].domains.free == before
    assert e.state.class_used["all"] == 0 and e.state.team_used["default"] == 0


def test_quota_with_cohort_borrowing():
    teams = [{"name": "a", "quota_gpus": 8, "cohort": "lab", "borrowing_limit_gpus": 8},
             {"name": "b", "quota_gpus": 16, "cohort": "lab"}, {"name": "solo", "quota_gpus": 8}]
    e = an_engine(a_portfolio(a_cluster(domains=10), teams=teams))
    assert e.place(a_request("a1", 8, 8, team="a"))[0].placed
    assert e.place(a_request("a2", 8, 8, team="a"))[0].placed          # borrows 8 of b's idle quota
    d = e.decide(a_request("a3", 8, 8, team="a"))
    assert not d.placed and "borrowing limit of 8" in d.reason
    assert e.place(a_request("b1", 8, 8, team="b"))[0].placed
    assert e.place(a_request("b2", 8, 8, team="b"))[0].placed          # a team may always use its own quota
    d = e.decide(a_request("b3", 8, 8, team="b"))
    assert not d.placed and "cohort lab uses 32 of 24" in d.reason
    e.place(a_request("s1", 8, 8, team="solo"))
    d = e.decide(a_request("s2", 1, 1, team="solo"))
    assert not d.placed and "no cohort to borrow from" in d.reason
    assert "has no quota" in e.decide(a_request("z", 1, 1, team="ghost")).reason


def test_concentration_cap_sends_work_to_another_provider():
    p = a_portfolio(a_cluster("a", provider="aws", price_per_gpu_hour=1.0), a_cluster("b", provider="oci", price_per_gpu_hour=5.0),
                    limits=[{"workload_class": "inference", "max_share": 0.5}])
    e = an_engine(p)
    clusters = [e.place(a_request(f"r{i}", 8, 8, kind="inference"))[1].cluster for i in range(4)]
    assert clusters[0] == "a"                       # cheapest first
    assert clusters.count("b") >= 1                 # then the cap moves work to the dearer provider
    used = e.state.class_provider_used
    assert used[("inference", "aws")] <= 0.5 * e.state.class_used["inference"] + 8


def test_cost_profile_prefers_idle_reserved_capacity_over_cheaper_list_price():
    p = a_portfolio(a_cluster("cheap", provider="lambda", price_per_gpu_hour=2.0),
                    a_cluster("reserved", provider="coreweave", price_per_gpu_hour=6.0),
                    contracts=[a_contract("r", "reserved_capacity", provider="coreweave", clusters=["reserved"], gpus=16)])
    cost = an_engine(p, profile="cost")
    d = cost.decide(a_request("x", 8, 8))
    assert d.cluster == "reserved" and d.cost_per_gpu_hour == 0.0
    cost.commit(d)
    cost.place(a_request("y", 8, 8))
    d = cost.decide(a_request("z", 8, 8))             # reservation now full: list prices compete
    assert d.cluster == "cheap"
    baseline = an_engine(p, profile="list-price")
    assert baseline.decide(a_request("x", 8, 8)).cluster == "cheap"


def test_spend_commitment_cost_rises_as_it_is_used_up():
    from gpufleet.placement.costs import marginal_cost
    p = a_portfolio(a_cluster("c", domains=1000, price_per_gpu_hour=10.0),
                    contracts=[a_contract("k", "spend_commitment", clusters=["c"], commitment_usd=1_000_000.0,
                                               price_per_gpu_hour=2.0)])
    e = an_engine(p, at="2026-12-01")  # 744 h left: 8 more GPUs add $11,904 to the projection
    cs, k = e.state.by_name["c"], e.state.contracts[0]
    assert marginal_cost(cs, 8, e.state.now) == 0.0               # far from used up: paid anyway
    k.spent_usd = 950_000.0                                        # 95% drawn: inside the last 10%
    assert 0.0 < marginal_cost(cs, 8, e.state.now) < 2.0
    k.spent_usd = 2_000_000.0                                      # beyond: the contract rate
    assert marginal_cost(cs, 8, e.state.now) == pytest.approx(2.0)


def test_speed_divides_cost():
    p = a_portfolio(a_cluster("h", gpu="H100", price_per_gpu_hour=4.0), a_cluster("b", gpu="B200", price_per_gpu_hour=6.0))
    e = an_engine(p, profile="list-price")
    from gpufleet.placement.request import Request
    fast = Request("x", 8, 8, {"H100": 1.0, "B200": 2.0})
    assert e.decide(fast).cluster == "b"        # 6/2 = 3 < 4/1
    even = Request("y", 8, 8, {"H100": 1.0, "B200": 1.0})
    assert e.decide(even).cluster == "h"


def test_profiles_are_validated_data():
    from pydantic import ValidationError
    from gpufleet.placement.profiles import BUILTIN_PROFILES, Profile, get_profile
    assert {"cost", "binpack", "spread", "list-price"} <= set(BUILTIN_PROFILES)
    with pytest.raises(ValidationError, match="unknown scorer"):
        Profile(name="bad", weights={"luck": 1.0})
    with pytest.raises(ValidationError, match="all be zero"):
        Profile(name="bad", weights={"cost": 0.0})
    with pytest.raises(KeyError):
        get_profile("nope")
    assert sum(w for _, w in get_profile("cost").normalized()) == pytest.approx(1.0)


def test_explanation_has_scores_for_every_feasible_cluster():
    e = an_engine(a_portfolio(a_cluster("a"), a_cluster("b", provider="oci"), nvl72("gb")))
    d = e.decide(a_request("x", 8, 8), explain=True)
    feasible = {v.cluster: v for v in d.verdicts if v.rejected is None}
    assert set(feasible) == {"a", "b"}
    for v in feasible.values():
        assert set(v.scores) == {"cost", "packing", "spread", "headroom"}
        assert all(0.0 <= s <= 1.0 for s in v.scores.values()) and 0 <= v.total <= 1
    assert d.score == max(v.total for v in feasible.values()) or d.score == pytest.approx(max(v.total for v in feasible.values()), abs=1e-4)
