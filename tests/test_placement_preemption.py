"""Preemption: lower-priority preemptible work only, whole gangs, least lost work."""

from builders import a_cluster, a_portfolio, a_request, an_engine


def test_preempts_the_victims_with_least_lost_work():
    e = an_engine(a_portfolio(a_cluster("c", domains=2)))
    e.state.now -= 3600 * 0.5
    e.place(a_request("old", 8, 8, priority=1, preemptible=True, checkpoint_interval_s=1e9))  # 0.5 h of work at risk
    e.state.now += 3600 * 0.5 - 60
    e.place(a_request("new", 8, 8, priority=1, preemptible=True, checkpoint_interval_s=1e9))  # 1 minute at risk
    e.state.now += 60
    d = e.decide(a_request("vip", 8, 8, priority=10))
    assert d.placed and d.victims == ("new",)
    e.commit(d)
    assert "new" not in e.state.allocations and "vip" in e.state.allocations


def test_never_preempts_higher_or_equal_priority_or_non_preemptible():
    e = an_engine(a_portfolio(a_cluster("c", domains=2)))
    e.place(a_request("same", 8, 8, priority=5, preemptible=True))
    e.place(a_request("pinned", 8, 8, priority=1, preemptible=False))
    d = e.decide(a_request("x", 8, 8, priority=5))
    assert not d.placed and d.victims == ()


def test_victim_set_frees_topology_correct_capacity():
    # Two domains each with 4 GPUs used by separate small jobs: a group of 8 needs one whole domain,
    # so both victims in ONE domain must go, not one from each.
    e = an_engine(a_portfolio(a_cluster("c", domains=2)))
    for i in range(4):
        e.place(a_request(f"s{i}", 4, 4, priority=1, preemptible=True))
    d = e.decide(a_request("big", 8, 8, priority=9))
    assert d.placed and len(d.victims) == 2
    doms = {e.state.allocations[v].parts[0][0] for v in d.victims}
    assert len(doms) == 1
    a = e.commit(d)
    assert a.parts == ((a.parts[0][0], 8),)


def test_whole_gang_is_evicted_never_part_of_it():
    e = an_engine(a_portfolio(a_cluster("c", domains=2)))
    e.place(a_request("gang", 16, 8, priority=1, preemptible=True))
    d = e.decide(a_request("x", 8, 8, priority=9))
    assert d.victims == ("gang",)
    e.commit(d)
    assert e.state.by_name["c"].domains.free_total == 8
