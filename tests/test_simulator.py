"""The simulator, read as a spec: bookkeeping, ordering, failures, preemption, money and determinism."""

import json

import pytest

from builders import a_cluster, a_contract, a_portfolio
from gpufleet.simulation.failures import Outage, OutageError, parse_outage
from gpufleet.scheduling.work import FINISHED
from sim_helpers import H, T0, a_job, one_cluster, simulate


def test_every_job_runs_once_after_submit_and_never_over_capacity():
    jobs = [a_job(f"j{i}", at_h=i * 0.5, hours=3, gpus=8) for i in range(12)]
    r, sim = simulate(one_cluster(domains=2), jobs)
    assert r["jobs"] == 12 and r["finished"] == 12
    assert r["finished"] + r["failed"] + r["queued"] + r["running"] == r["jobs"]
    spans = sorted((j.first_start_s, j.finish_s) for j in jobs)
    for j in jobs:
        assert j.state == FINISHED and j.first_start_s >= j.submit_s
        assert j.finish_s - j.first_start_s == pytest.approx(3 * H)
    for t, _ in spans:  # at no instant more than 2 nodes busy
        assert sum(1 for s, e in spans if s <= t < e) <= 2
    assert r["gpu_hours"] == pytest.approx(12 * 3 * 8)


def test_fifo_head_blocks_and_backfill_lets_short_jobs_through():
    def jobs():
        return [a_job("long", 0, 10, gpus=8), a_job("big", 1, 1, gpus=16, group=8),
                a_job("short", 2, 1, gpus=8)]
    p = one_cluster(domains=2)
    _, fifo = simulate(p, js := jobs(), queue="fifo")
    fifo_short = next(j for j in js if j.id == "short")
    _, bf = simulate(p, jb := jobs(), queue="backfill")
    bf_short = next(j for j in jb if j.id == "short")
    big = next(j for j in jb if j.id == "big")
    assert fifo_short.first_start_s >= T0 + 11 * H      # waits behind the blocked head
    assert bf_short.first_start_s == T0 + 2 * H         # ends (3 h) before the head's reservation (10 h)
    assert big.first_start_s == T0 + 10 * H             # the head is not delayed


def test_sjf_runs_short_jobs_first():
    jobs = [a_job("blocker", 0, 5, gpus=8), a_job("long", 1, 9, gpus=8), a_job("short", 2, 1, gpus=8)]
    _, sim = simulate(one_cluster(domains=1), jobs, queue="sjf")
    by = {j.id: j for j in jobs}
    assert by["short"].first_start_s < by["long"].first_start_s


def test_job_that_can_never_fit_fails_with_a_reason():
    jobs = [a_job("huge", 0, 1, gpus=64, group=8), a_job("ok", 0, 1)]
    r, _ = simulate(one_cluster(domains=2), jobs)
    assert r["failed"] == 1 and r["finished"] == 1
    (reason,) = r["failed_reasons"]
    assert "can never be placed" in reason and "fabric" in reason


def test_provider_outage_requeues_work_elsewhere_from_its_last_checkpoint():
    p = a_portfolio(a_cluster("a", provider="aws", price_per_gpu_hour=1.0), a_cluster("b", provider="oci", price_per_gpu_hour=5.0))
    job = a_job("train", 0, 10, gpus=8, ckpt_h=1.0, preemptible=False, kind="training")
    outage = Outage("aws", "provider", T0 + 2.5 * H, 48 * H)
    r, sim = simulate(p, [job], outages=[outage])
    assert job.state == FINISHED and job.restarts == 1
    assert job.lost_gpu_s == pytest.approx(0.5 * H * 8)          # 2.5 h run, checkpoint at 2 h
    assert job.finish_s == pytest.approx(T0 + 2.5 * H + 8 * H)   # 8 h left, restarted at once on oci
    assert r["lost_gpu_hours"] == pytest.approx(4.0)
    assert r["failures"] == {"provider outage": 1}


def test_random_domain_failures_interrupt_and_requeue():
    p = one_cluster(domains=4, reliability={"domain_mtbf_h": 5.0, "repair_h": 1.0})
    jobs = [a_job(f"j{i}", 0, 20, gpus=8, ckpt_h=0.5) for i in range(2)]
    r, _ = simulate(p, jobs, failures=True, until_h=24 * 10)
    assert r["failures"]["domain"] > 0 and r["restarts"] > 0
    assert all(j.state == FINISHED for j in jobs)
    assert r["finished"] == 2


def test_higher_priority_training_preempts_batch_which_later_finishes():
    batch = [a_job(f"b{i}", 0, 5, gpus=8, priority=1) for i in range(2)]
    train = a_job("t", 1, 2, gpus=8, priority=100, preemptible=False, kind="training")
    r, _ = simulate(one_cluster(domains=2), batch + [train])
    assert r["preemptions"] == 1 and r["finished"] == 3
    assert train.first_start_s == T0 + 1 * H
    assert sum(j.restarts for j in batch) == 1


def test_same_seed_same_result_byte_for_byte(examples):
    from gpufleet.files import load_scenario
    from gpufleet.simulation.simulator import SimOptions, Simulator
    import random

    def once(seed):
        p = load_scenario(str(examples / "small.yaml"))
        r = Simulator(p, "cost", SimOptions(until_s=T0 + 24 * 40 * H), random.Random(seed)).run()
        r.pop("wall_s"), r.pop("events_per_s")
        return json.dumps(r, sort_keys=True)

    a, b, c = once(7), once(7), once(8)
    assert a == b
    assert a != c


def test_accounting_under_each_contract_kind():
    p = a_portfolio(a_cluster("r", provider="coreweave", domains=1, price_per_gpu_hour=10.0),
                    a_cluster("s", provider="aws", domains=1, price_per_gpu_hour=10.0),
                    a_cluster("o", provider="oci", domains=1, price_per_gpu_hour=4.0),
                    contracts=[a_contract("res", "reserved_capacity", provider="coreweave", clusters=["r"], gpus=8,
                                          price_per_gpu_hour=2.0),
                               a_contract("com", "spend_commitment", provider="aws", clusters=["s"],
                                          commitment_usd=1_000_000.0, price_per_gpu_hour=3.0),
                               a_contract("od", "on_demand", provider="oci", clusters=["o"], discount=0.25)])
    jobs = [a_job("r1", 0, 10, gpus=8, providers=frozenset({"coreweave"})),
            a_job("s1", 0, 10, gpus=8, providers=frozenset({"aws"})),
            a_job("o1", 0, 10, gpus=8, providers=frozenset({"oci"}))]
    r, _ = simulate(p, jobs, until_h=24, drain=False)
    rows = {c["contract"]: c for c in r["per_contract"]}
    assert rows["res"]["billed_usd"] == pytest.approx(8 * 2.0 * 24)               # paid whether used or not
    assert rows["res"]["wasted_usd"] == pytest.approx(8 * 2.0 * 14)               # idle 14 of 24 h
    assert rows["com"]["drawn_usd"] == pytest.approx(8 * 3.0 * 10)                # drawn at the contract rate
    owed = 1_000_000.0 * 1 / 365                                                   # one day of a one-year term
    assert rows["com"]["wasted_usd"] == pytest.approx(owed - 240, abs=0.01)
    assert rows["od"]["billed_usd"] == pytest.approx(8 * 4.0 * 0.75 * 10)         # list less the discount
    assert r["cost_usd"] == pytest.approx(8 * 2 * 24 + owed + 8 * 4 * 0.75 * 10, abs=0.02)


def test_ramp_brings_capacity_on_its_date():
    p = a_portfolio(a_cluster("c", ramp=[{"date": "2026-01-01", "domains": 1}, {"date": "2026-01-03", "domains": 2}]))
    jobs = [a_job("a", 0, 100, gpus=8), a_job("b", 1, 1, gpus=8)]
    _, _ = simulate(p, jobs)
    assert jobs[1].first_start_s == pytest.approx(T0 + 48 * H)


@pytest.mark.parametrize("spec, words", [
    ("aws@2026-06-01T00:00/48h", None), ("c#1@2026-06-01/6h", None), ("c@2026-06-01/30m", None),
    ("mars@2026-06-01/1h", "names no provider"), ("aws@june/1h", "expected TARGET@START"),
    ("aws@2026-13-01/1h", "not an ISO date"), ("c#9@2026-06-01/1h", "has 2 domains"),
])
def test_outage_specs(spec, words):
    p = one_cluster(domains=2)
    if words is None:
        o = parse_outage(spec, p)
        assert o.duration_s > 0 and o.kind in ("provider", "cluster", "domain")
    else:
        with pytest.raises(OutageError, match=words):
            parse_outage(spec, p)
