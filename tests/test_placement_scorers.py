"""Each scorer on its own: scores in [0, 1], ordered the way its docstring promises."""

import pytest

from builders import a_cluster, a_contract, a_portfolio, a_request, an_engine
from gpufleet.placement.request import Request
from gpufleet.placement.scorers import SCORERS, cost, headroom, list_price, packing, spread


def three():
    p = a_portfolio(a_cluster("cheap", provider="lambda", price_per_gpu_hour=2.0, domains=4),
                    a_cluster("dear", provider="oci", price_per_gpu_hour=8.0, domains=4),
                    a_cluster("free", provider="coreweave", price_per_gpu_hour=10.0, domains=4),
                    contracts=[a_contract("r", "reserved_capacity", provider="coreweave", clusters=["free"], gpus=32)])
    e = an_engine(p)
    return e, e.state.clusters


@pytest.mark.parametrize("name", sorted(SCORERS))
def test_every_scorer_returns_one_score_in_unit_interval_per_candidate(name):
    e, cands = three()
    scores = SCORERS[name](cands, a_request("x", 8, 8), e.state, {})
    assert len(scores) == len(cands) and all(0.0 <= s <= 1.0 for s in scores)


def test_cost_prefers_idle_reserved_then_cheaper_list_and_reports_rates():
    e, cands = three()
    ctx: dict = {}
    s = cost(cands, a_request("x", 8, 8), e.state, ctx)
    assert ctx["cost_per_gpu_hour"] == [2.0, 8.0, 0.0]
    assert s[2] == 1.0 and s[0] > s[1]


def test_list_price_ignores_contracts_and_divides_by_speed():
    e, cands = three()
    s = list_price(cands, a_request("x", 8, 8), e.state, {})
    assert s.index(1.0) == 0 and s[2] < s[1]
    fast = Request("y", 8, 8, {"H100": 10.0})
    faster = list_price(cands, fast, e.state, {})
    assert sorted(range(3), key=faster.__getitem__) == sorted(range(3), key=s.__getitem__)  # same ranking


def test_packing_prefers_snug_fits_in_partly_used_domains_and_busy_clusters():
    e, cands = three()
    e.place(a_request("a", 6, 6, providers=frozenset({"oci"})))
    s = packing(cands, a_request("b", 2, 2), e.state, {})
    assert s[1] > s[0] and s[1] > s[2]        # oci has a domain with exactly 2 free


def test_spread_prefers_providers_carrying_less_of_the_service():
    e, cands = three()
    for i in range(3):
        e.place(Request(f"r{i}", 8, 8, {"H100": 1.0}, kind="inference", spread_key="svc",
                        providers=frozenset({"lambda"})))
    s = spread(cands, Request("n", 8, 8, {"H100": 1.0}, kind="inference", spread_key="svc"), e.state, {})
    assert s[0] == 0.0 and s[1] == s[2] == 1.0


def test_headroom_prefers_clusters_left_with_spare_capacity():
    e, cands = three()
    e.place(a_request("a", 24, 8, providers=frozenset({"lambda"})))
    s = headroom(cands, a_request("b", 8, 8), e.state, {})
    assert s[0] == 0.0 and s[1] == s[2] == pytest.approx(24 / 32)
