"""Waits read in one unit across a run's table, notes and report."""

from __future__ import annotations

from gpufleet.report.units import WaitUnit


def run(avg: float, p99: float) -> dict:
    return {"avg_wait_s": avg, "p50_wait_s": avg / 2, "p95_wait_s": p99 / 2, "p99_wait_s": p99}


def test_the_largest_wait_of_all_runs_picks_the_unit():
    assert WaitUnit([run(3, 50)]).name == "s"
    w = WaitUnit([run(30, 600), run(10, 300)])
    assert (w.name, w(90), w.number(3600)) == ("min", "1.5 min", "60.0")
    w = WaitUnit([run(30, 600), run(100, 36_000)])        # one run waits hours: both read in hours
    assert (w.name, w(1800), w.number(36_000)) == ("h", "0.50 h", "10.00")


def test_missing_waits_count_as_none():
    assert WaitUnit([{"avg_wait_s": None}]).name == "s"
