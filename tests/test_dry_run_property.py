"""`Scheduler.trial` (behind `gpufleet submit --dry-run`) predicts what submitting the work does, and
changes nothing: over random fleets, random queues and random work, with preemption and quotas."""

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_placement_properties import fleets, requests, snapshot

from builders import an_engine
from gpufleet.scheduling.scheduler import Scheduler
from gpufleet.scheduling.work import QUEUED, RUNNING, Work


def _where(sched: Scheduler, w: Work) -> list[str]:
    return [sched.state.allocations[r.id].cluster for r in w.requests]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_trial_says_what_a_submission_then_does_and_changes_nothing(data):
    eng = an_engine(data.draw(fleets()))
    sched = Scheduler(eng)
    now = eng.state.now
    for i in range(data.draw(st.integers(0, 30))):   # a fleet part full, part waiting
        sched.submit(Work(data.draw(requests(i)), now, 3600.0, id=f"w{i}"), now)
        sched.cycle(now)
    first = data.draw(requests(100))
    reqs = [first] + [replace(first, id=f"r100/{k}") for k in range(data.draw(st.integers(0, 2)))]  # replicas
    w = Work(reqs, now, 3600.0, id="probe")
    if sched.never_runs(w) is not None:
        return
    before = snapshot(eng), {k: x.state for k, x in sched.running.items()}, sched.queued
    res, ahead = sched.trial(w)
    assert (snapshot(eng), {k: x.state for k, x in sched.running.items()}, sched.queued) == before
    victims = {sched.owner[v].id for d, _ in res.placed for v in d.victims}
    sched.submit(w, now)
    sched.cycle(now)
    if res.unplaced:
        assert w.state != RUNNING, res.unplaced[0].reason
    else:
        assert w.state == RUNNING and _where(sched, w) == [a.cluster for _, a in res.placed]
        assert all(v not in sched.running for v in victims)     # the victims it named were the ones stopped
    assert all(x.state == QUEUED for x in ahead) or not res.unplaced   # waiting work it named still waits


def test_a_trial_names_the_victims_a_submission_then_preempts():
    from builders import a_cluster, a_portfolio
    from gpufleet.placement.request import Request
    eng = an_engine(a_portfolio(a_cluster("c0", domains=2), teams=[{"name": "t0", "quota_gpus": 64}]))
    sched = Scheduler(eng)
    now = eng.state.now
    low = [Work(Request(id=f"low{i}", gpus=8, group=8, speeds={"H100": 1.0}, team="t0", priority=0,
                        preemptible=True), now, 3600.0, id=f"low{i}") for i in range(2)]
    for w in low:
        sched.submit(w, now)
    high = Work(Request(id="high", gpus=8, group=8, speeds={"H100": 1.0}, team="t0", priority=5), now, 3600.0,
                id="high")
    before = snapshot(eng)
    res, _ = sched.trial(high)
    [(d, _a)] = res.placed
    assert snapshot(eng) == before and len(d.victims) == 1 and all(w.state == RUNNING for w in low)
    victim = sched.owner[d.victims[0]]
    sched.submit(high, now)
    assert high.state == RUNNING and victim.state == QUEUED and _where(sched, high) == [d.cluster]
