"""Parity: the simulator and the live control loop, given the same jobs, failures and clock, start the same
work in the same order on the same clusters and count the same lost work (one scheduler, two drivers)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parity_harness import Case, Outcome, run_live, run_sim

H = 3600.0


def assert_same(case: Case, tmp: Path) -> tuple[Outcome, Outcome]:
    sim, live = run_sim(case), run_live(case, tmp)
    assert [(round(t, 3), j, c) for t, j, c in live.starts] == [(round(t, 3), j, c) for t, j, c in sim.starts]
    assert {j: round(x, 3) for j, x in live.lost_gpu_s.items()} == {j: round(x, 3) for j, x in sim.lost_gpu_s.items()}
    assert live.states == sim.states
    return sim, live


def test_smaller_work_goes_past_a_job_that_does_not_fit(tmp_path):
    # 8 H100 GPUs are free; a 16-GPU gang cannot fit, the 8-GPU job behind it starts at once, in both.
    case = Case(jobs=[(0, {"name": "big0", "team": "research", "gpus": "H100:16", "tp": 8, "duration_s": 10 * H}),
                      (60, {"name": "big1", "team": "research", "gpus": "H100:8", "duration_s": 10 * H}),
                      (120, {"name": "gang", "team": "research", "gpus": "H100:16", "tp": 8, "duration_s": H}),
                      (180, {"name": "small", "team": "serving", "kind": "batch", "gpus": "H100:8",
                             "duration_s": H})])
    sim, _ = assert_same(case, tmp_path)
    started = {j: t for t, j, _ in sim.starts}
    assert started[4] < started[3] and started[4] - started[1] < 200  # small ran at once, before the gang


def test_one_teams_quota_block_does_not_hold_up_another_team(tmp_path):
    # batch's quota is 8 GPUs: its second job waits; serving's job with the same shape runs at once in both.
    job = {"kind": "batch", "gpus": "H100:8", "duration_s": 5 * H}
    case = Case(jobs=[(0, {"name": "b0", "team": "batch", **job}), (60, {"name": "b1", "team": "batch", **job}),
                      (120, {"name": "s0", "team": "serving", **job})])
    sim, _ = assert_same(case, tmp_path)
    started = {j: t for t, j, _ in sim.starts}
    assert started[3] < started[2]


def test_min_providers_spreads_a_service_in_both(tmp_path):
    svc = {"name": "svc", "kind": "inference", "team": "serving", "gpus": "H100:8", "replicas": {"r1": 2},
           "min_providers": 2, "duration_s": 3 * H}
    case = Case(jobs=[(0, svc)])
    sim, _ = assert_same(case, tmp_path)
    assert sorted(sim.starts[0][2]) == ["a-h100", "b-h100"]


def test_preemption_and_lost_work_agree(tmp_path):
    low = {"kind": "batch", "team": "research", "gpus": "H100:16", "tp": 8, "priority": 1, "preemptible": True,
           "duration_s": 8 * H, "checkpoint_interval_s": H}
    case = Case(jobs=[(0, {"name": "low0", **low}), (30, {"name": "low1", **low}),
                      (2.5 * H, {"name": "urgent", "kind": "training", "team": "serving", "gpus": "H100:16",
                                 "tp": 8, "priority": 900, "duration_s": H})])
    sim, _ = assert_same(case, tmp_path)
    # one victim: the later of the two (the newest), its 16 GPUs' work since its last hourly checkpoint lost
    assert [j for j, x in sim.lost_gpu_s.items() if x > 0] == [2]
    assert sim.lost_gpu_s[2] == pytest.approx(16 * (0.5 * H - 30), abs=1)


def test_a_provider_outage_moves_work_and_counts_the_same_loss(tmp_path):
    train = {"kind": "training", "team": "research", "gpus": "H100:16", "tp": 8, "duration_s": 6 * H,
             "checkpoint_interval_s": 1800}
    case = Case(jobs=[(0, {"name": "t0", **train}), (60, {"name": "t1", **train})],
                failures=[(2.2 * H, 5 * H, "provider", "prov-a")])
    sim, _ = assert_same(case, tmp_path)
    # t0 ran on prov-a (cheaper), t1 on prov-b; the outage moves t0 to prov-b once t1 is done
    assert [(j, c) for _, j, c in sim.starts] == [(1, ("a-h100",)), (2, ("b-h100",)), (1, ("b-h100",))]
    assert sim.lost_gpu_s[1] == pytest.approx(16 * (2.2 * H - 4 * 1800), abs=1) and sim.lost_gpu_s[2] == 0


JOB = st.fixed_dictionaries({
    "team": st.sampled_from(["research", "serving", "batch"]),
    "kind": st.sampled_from(["batch", "training"]),
    "gpus": st.sampled_from(["H100:8", "H100:16", "H200:8", "H100:4", "H100:1"]),
    "priority": st.integers(0, 3).map(lambda x: x * 100),
    "preemptible": st.booleans(),
    "duration_s": st.integers(1, 12).map(lambda x: x * 1800.0),
    "checkpoint_interval_s": st.sampled_from([900.0, 3600.0]),
})


@st.composite
def cases(draw) -> Case:
    n = draw(st.integers(1, 14))
    gaps = draw(st.lists(st.integers(0, 240).map(lambda m: m * 60.0), min_size=n, max_size=n))
    jobs, t = [], 0.0
    for i, gap in enumerate(gaps):
        t += gap
        job = dict(draw(JOB), name=f"j{i}")
        if job["gpus"] == "H100:16":
            job["tp"] = 8
        jobs.append((t, job))
    failures = []
    if draw(st.booleans()):
        failures.append((draw(st.integers(1, 40)) * 900.0, draw(st.integers(1, 20)) * 900.0,
                         draw(st.sampled_from(["cluster", "provider"])),
                         draw(st.sampled_from(["a-h100", "b-h100", "prov-a", "prov-b"]))))
        scope, target = failures[0][2], failures[0][3]
        if (scope == "cluster") != target.endswith("h100"):
            failures[0] = (*failures[0][:2], "cluster" if target.endswith("h100") else "provider", target)
    return Case(jobs=jobs, failures=failures)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_generated_job_mixes_run_alike_in_the_simulator_and_the_live_loop(case):
    with tempfile.TemporaryDirectory() as tmp:
        assert_same(case, Path(tmp))
