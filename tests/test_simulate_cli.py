"""`gpufleet simulate` from the command line: traces, outages, outputs and bad input."""

import json

import pytest

from cli_helpers import gpufleet


def test_trace_replay_with_json_and_report(examples, tmp_path):
    out, rep = tmp_path / "r.json", tmp_path / "r.html"
    r = gpufleet("simulate", str(examples / "small.yaml"), "--no-workloads", "--trace",
                 str(examples / "traces/small-jobs.csv"), "--trace-format", "csv", "--until", "2026-02-15",
                 "--json", str(out), "--report", str(rep))
    assert r.code == 0, r.err
    doc = json.loads(out.read_text())
    assert doc["jobs"] == 400 and doc["finished"] + doc["failed"] + doc["queued"] + doc["running"] == 400
    assert doc["trace_import"][0]["rows_read"] == 400
    for key in ("jobs", "finished", "avg_wait_s", "avg_jct_s", "utilization", "cost_usd", "commitment_wasted_usd",
                "lost_gpu_hours", "inference_slo_attainment", "events", "wall_s", "timeseries", "per_provider"):
        assert key in doc
    assert rep.read_text().startswith("<!DOCTYPE html>") or "<html" in rep.read_text()[:500]


def test_outage_and_json_to_stdout(examples):
    r = gpufleet("simulate", str(examples / "small.yaml"), "--until", "2026-03-01", "--fail", "oci@2026-02-01T00:00/24h",
                 "--json", "-", "--seed", "3")
    assert r.code == 0
    doc = json.loads(r.out)
    assert doc["failures"].get("provider outage") == 1
    assert any(f["kind"] == "provider outage" and f["target"] == "oci" for f in doc["timeseries"]["failures"])


@pytest.mark.parametrize("args, words", [
    (["--fail", "mars@2026-02-01/1h"], "names no provider"),
    (["--until", "2020-01-01"], "not after the scenario's start"),
    (["--until", "soon"], "--until"),
    (["--queue", "lottery"], "unknown discipline"),
    (["--policy", "fastest"], "unknown placement profile"),
    (["--trace", "nope.csv", "--trace-format", "csv"], "nope.csv"),
    (["--trace", "x.csv", "--trace-format", "parquet"], "parquet"),
])
def test_bad_options_exit_2(examples, args, words):
    r = gpufleet("simulate", str(examples / "small.yaml"), *args)
    assert r.code == 2 and words in r.err


def test_trace_jobs_that_would_have_no_quota_are_refused_before_the_run(examples, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("submit_time,gpus,duration_s,queue\n0,1,60,ghost-team\n10,1,60,research\n")
    args = ["simulate", str(examples / "small.yaml"), "--no-workloads", "--trace", str(trace),
            "--trace-format", "csv", "--until", "2026-01-03"]
    r = gpufleet(*args, "--json", "-")
    assert r.code == 2 and "ghost-team" in r.err and "--trace-team" in r.err and not r.out
    doc = json.loads(gpufleet(*args, "--trace-team", "research", "--json", "-").out)
    assert doc["jobs"] == 2 and doc["failed"] == 0 and doc["finished"] == 2
