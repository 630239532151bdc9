"""Fidelity: the Philly job list replayed per virtual cluster (needs ../shared; skipped without it)."""

import csv
from collections import defaultdict

import pytest

from gpufleet.simulation.fidelity import philly_replay


@pytest.fixture(scope="module")
def philly(request):
    from conftest import SHARED
    folder = SHARED / "data/traces/philly_pollux"
    if not (folder / "philly.csv").exists():
        pytest.skip("../shared/data/traces/philly_pollux is not beside the checkout")
    trace, nodes = str(folder / "philly.csv"), str(folder / "philly_vc_nodes_helios_qssf.csv")
    runs = {q: philly_replay(trace, nodes, queue=q, keep_jobs=(q == "fifo")) for q in ("fifo", "backfill", "sjf")}
    with open(trace, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["timestamp"]]
    return runs, rows


def test_bookkeeping_is_exact(philly):
    runs, rows = philly
    r = runs["fifo"]
    assert r["import"]["rows_read"] == len(rows) == 82_247
    assert r["import"]["rows_used"] + r["import"]["rows_skipped"] == r["import"]["rows_read"]
    skipped = sum(r["skipped"].values())
    assert r["replayed"] + skipped == r["import"]["rows_used"]
    assert set(r["skipped"]) <= {"VC not in the node-count file", "larger than its whole VC"}
    res = r["result"]
    assert res["jobs"] == r["replayed"] == res["finished"]
    assert res["failed"] == res["queued"] == res["running"] == 0
    vcs = set(r["vc_nodes"])
    expected = sum(float(x["gpu_time"]) for x in rows if x["cluster"] in vcs and float(x["duration"]) > 0
                   and int(x["num_gpus"]) > 0)
    assert r["delivered_gpu_s"] == pytest.approx(expected, rel=1e-9)


def test_each_job_runs_once_after_submit_and_never_over_capacity(philly):
    runs, _ = philly
    r = runs["fifo"]
    jobs = r["jobs"]
    assert len(jobs) == r["replayed"]
    per_vc = defaultdict(list)
    for j in jobs:
        assert j.restarts == 0 and j.first_start_s >= j.submit_s
        assert j.finish_s - j.first_start_s == pytest.approx(j.total_work_s)
        vc = next(iter(j.request.regions))
        per_vc[vc] += [(j.first_start_s, j.gpus), (j.finish_s, -j.gpus)]
    for vc, events in per_vc.items():
        busy, cap = 0, r["vc_nodes"][vc] * 8
        for _, delta in sorted(events, key=lambda e: (e[0], e[1])):  # releases first at equal times
            busy += delta
            assert busy <= cap


def test_queue_disciplines_in_expected_order_of_wait(philly):
    runs, _ = philly
    wait = {q: r["result"]["avg_wait_s"] for q, r in runs.items()}
    assert wait["sjf"] < wait["backfill"] < wait["fifo"]
