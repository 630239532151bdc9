"""`gpufleet sweep`: the cross product of runs, each identical to the same `gpufleet simulate` done alone, on a
process pool and on Ray, and the spread of their outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gpufleet.cli.main import command
from gpufleet.files import load_scenario
from gpufleet.simulation.sweep import SweepError, comparable, runs, summarize

SMALL = str(Path(__file__).resolve().parents[1] / "examples" / "small.yaml")
UNTIL = "2026-03-01"


def _sweep(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "sweep.json"
    r = CliRunner().invoke(command(), ["sweep", SMALL, "--until", UNTIL, "--json", str(out), *args])
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text())


def _alone(tmp_path: Path, seed: int, fail: list[str], profile: str | None = None) -> dict:
    out = tmp_path / f"alone-{seed}.json"
    extra = [x for f in fail for x in ("--fail", f)] + (["--profile", profile] if profile else [])
    r = CliRunner().invoke(command(), ["simulate", SMALL, "--until", UNTIL, "--seed", str(seed), "--json", str(out),
                                       *extra])
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text())


def test_the_runs_are_every_what_if_profile_and_seed_base_first():
    p = load_scenario(SMALL)
    plan = runs(p, 3, ["drop:aws", "fail:oci@2026-02-01/2d"], ["cost", "binpack"], first_seed=7)
    assert len(plan) == 3 * 2 * 3 and plan[0].what_if == "base" and plan[0].fail == ()
    assert {r.seed for r in plan} == {7, 8, 9}
    drop = next(r for r in plan if r.what_if == "drop:aws")
    assert drop.fail == ("aws@2026-01-01T00:00/366d",)          # down from start to end
    with pytest.raises(SweepError, match="no provider 'nope'"):
        runs(p, 1, ["drop:nope"], [None])
    with pytest.raises(SweepError, match="expected base, drop"):
        runs(p, 1, ["double:aws"], [None])


def test_each_run_of_a_process_pool_sweep_is_the_simulation_done_alone(tmp_path):
    doc = _sweep(tmp_path, "--seeds", "2", "--what-if", "drop:aws", "--engine", "process", "--workers", "2")
    assert doc["engine"] == "process" and len(doc["runs"]) == 4
    for run in doc["runs"]:
        alone = _alone(tmp_path, run["seed"], run["fail"])
        assert json.dumps(comparable(run["result"]), sort_keys=True) == json.dumps(comparable(alone), sort_keys=True)
    base = [r["result"] for r in doc["runs"] if r["what_if"] == "base"]
    [s] = [s for s in doc["summary"] if s["what_if"] == "base"]
    assert s["runs"] == 2 and s["cost_usd"]["p50"] == pytest.approx(float(np.median([r["cost_usd"] for r in base])))
    dropped = [s for s in doc["summary"] if s["what_if"] == "drop:aws"][0]
    assert dropped["demand_served"]["p50"] < s["demand_served"]["p50"] or \
        dropped["cost_usd"]["p50"] != s["cost_usd"]["p50"]       # losing a provider shows


def test_a_ray_sweep_gives_the_same_runs(tmp_path):
    pytest.importorskip("ray")
    on_ray = _sweep(tmp_path, "--seeds", "2", "--engine", "ray", "--workers", "2")
    on_pool = _sweep(tmp_path, "--seeds", "2", "--engine", "process", "--workers", "2")
    assert on_ray["engine"] == "ray"
    assert [comparable(r["result"]) for r in on_ray["runs"]] == [comparable(r["result"]) for r in on_pool["runs"]]


def test_summarize_gives_percentiles_per_what_if_and_profile():
    p = load_scenario(SMALL)
    plan = runs(p, 5, [], [None])
    fake = [{"profile": "cost", "cost_usd": float(i), "commitment_wasted_usd": 1.0, "reserved_wasted_usd": 2.0,
             "avg_wait_s": 10.0 * i, "p99_wait_s": 0.0, "inference_slo_attainment": 1.0, "lost_gpu_hours": 0.0}
            for i in range(5)]
    [s] = summarize(list(zip(plan, fake)))
    assert (s["runs"], s["cost_usd"]["p10"], s["cost_usd"]["p50"], s["cost_usd"]["p90"]) == (5, 0.4, 2.0, 3.6)
    assert s["committed_wasted_usd"]["mean"] == 3.0 and s["avg_wait_s"]["p50"] == 20.0


def test_bad_sweep_input_is_exit_2_with_the_reason():
    r = CliRunner().invoke(command(), ["sweep", SMALL, "--what-if", "drop:nope"])
    assert r.exit_code == 2 and "no provider 'nope'" in r.output
    r = CliRunner().invoke(command(), ["sweep", SMALL, "--what-if", "fail:aws@never/2d"])
    assert r.exit_code == 2 and "--fail" in r.output
    r = CliRunner().invoke(command(), ["sweep", SMALL, "--engine", "gpu"])
    assert r.exit_code == 2 and "--engine" in r.output
