"""Invariants of the placement engine over random fleets and random sequences of requests and releases."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import a_cluster, a_portfolio, an_engine
from gpufleet.placement.request import Request

GPUS = {"H100": 8, "GB200": 72}


@st.composite
def fleets(draw):
    n = draw(st.integers(1, 4))
    clusters = []
    for i in range(n):
        gpu = draw(st.sampled_from(sorted(GPUS)))
        extra = {}
        if gpu == "GB200" and draw(st.booleans()):
            extra["usable_gpus_per_domain"] = 64
        clusters.append(a_cluster(f"c{i}", provider=draw(st.sampled_from(["aws", "oci", "azure"])), gpu=gpu,
                                  domains=draw(st.integers(1, 6)),
                                  price_per_gpu_hour=draw(st.floats(0.5, 20.0)), **extra))
    teams = [{"name": "t0", "quota_gpus": draw(st.integers(0, 300)), "cohort": "lab",
              "borrowing_limit_gpus": draw(st.integers(0, 100))},
             {"name": "t1", "quota_gpus": draw(st.integers(0, 300)), "cohort": "lab"},
             {"name": "t2", "quota_gpus": draw(st.integers(0, 300))}]
    limits = [{"workload_class": "inference", "max_share": draw(st.floats(0.3, 1.0))}] if draw(st.booleans()) else []
    return a_portfolio(*clusters, teams=teams, limits=limits)


@st.composite
def requests(draw, i):
    group = draw(st.sampled_from([1, 2, 4, 8, 16, 36, 64, 72]))
    groups = draw(st.integers(1, 4))
    types = draw(st.sets(st.sampled_from(sorted(GPUS)), min_size=1))
    return Request(id=f"r{i}", gpus=group * groups, group=group, speeds={t: 1.0 for t in types},
                   team=draw(st.sampled_from(["t0", "t1", "t2"])),
                   kind=draw(st.sampled_from(["training", "inference", "batch"])),
                   priority=draw(st.integers(0, 3)), preemptible=draw(st.booleans()))


def snapshot(e):
    s = e.state
    return ([list(c.domains.free) for c in s.clusters], [c.domains.mask for c in s.clusters],
            [c.domains.free_total for c in s.clusters], [c.allocated for c in s.clusters],
            {k: v for k, v in s.team_used.items() if v}, {k: v for k, v in s.class_used.items() if v},
            {k: v for k, v in s.class_provider_used.items() if v}, sorted(s.allocations),
            [k.used_gpus for k in s.contracts])


def check_invariants(e):
    s = e.state
    per_domain = {}
    for a in s.allocations.values():
        cs = s.by_name[a.cluster]
        assert sum(n for _, n in a.parts) == a.gpus                    # the whole gang, in one cluster
        for d, n in a.parts:
            assert n % a.request.group == 0                            # groups never split across domains
            per_domain[(cs.name, d)] = per_domain.get((cs.name, d), 0) + n
    for cs in s.clusters:
        dom = cs.domains
        for d, free in enumerate(dom.free):
            assert 0 <= free <= dom.usable                               # never over-allocated
            assert free + per_domain.get((cs.name, d), 0) == dom.usable  # exact bookkeeping
        for k, b in enumerate(dom.buckets):
            assert all(dom.free[d] == k and dom.is_live(d) for d in b)
            assert bool(b) == bool(dom.mask >> k & 1)
    used = {}
    for a in s.allocations.values():
        used[a.request.team] = used.get(a.request.team, 0) + a.gpus
    for team, n in used.items():
        assert s.team_used[team] == n
        limit = s.borrow_limit.get(team)
        cohort = s.cohort_of.get(team)
        ceiling = s.quota[team] + (limit if limit is not None else (s.cohort_quota[cohort] if cohort else 0))
        assert n <= ceiling                                              # quotas hold


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_sequences_keep_every_invariant(data):
    e = an_engine(data.draw(fleets()))
    live: list[str] = []
    for i in range(data.draw(st.integers(1, 40))):
        if live and data.draw(st.integers(0, 3)) == 0:
            rid = live.pop(data.draw(st.integers(0, len(live) - 1)))
            assert e.release(rid) is not None
        else:
            req = data.draw(requests(i))
            before = snapshot(e)
            shares = dict(e.state.class_provider_used), dict(e.state.class_used)
            d = e.decide(req)
            if not d.placed:
                assert snapshot(e) == before                             # deciding never changes state
                continue
            victims = [e.state.allocations[v] for v in d.victims]
            for v in victims:                                            # only lower-priority, preemptible work
                assert v.request.priority < req.priority and v.request.preemptible
            a = e.commit(d)
            if not victims:
                for cls, prov, cap in e.state.limits:
                    if cls in (req.kind, "all") and (prov in (None, a.provider)) and shares[1].get(cls, 0):
                        assert shares[0].get((cls, a.provider), 0) <= cap * shares[1][cls] + 1e-9
                e.release(req.id)                                        # allocate-then-release is exact
                assert snapshot(e) == before
                e.commit(e.decide(req))
            live = [x for x in live if x not in d.victims] + [req.id]
        check_invariants(e)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cached_decisions_equal_explained_decisions(data):
    """The fast path (per-shape caches) and the explained path (no caches) always agree."""
    e = an_engine(data.draw(fleets()))
    for i in range(data.draw(st.integers(1, 30))):
        req = data.draw(requests(i))
        fast = e.decide(req)
        slow = e.decide(req, explain=True)
        assert (fast.cluster, fast.victims, fast.reason) == (slow.cluster, slow.victims, slow.reason)
        if fast.placed:
            assert fast.score == pytest.approx(slow.score, abs=1e-9)
            e.commit(fast)
        if e.state.allocations and data.draw(st.booleans()):
            e.release(sorted(e.state.allocations)[0])
