"""Traces on a portfolio: every constraint a trace states is honoured and nothing fails silently."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import gpufleet
from conftest import EXAMPLES

FIX = Path(__file__).parent / "fixtures" / "traces"

TWO_TYPES = """
name: two-types
start: 2026-01-01
end: 2026-03-01
providers:
  - {name: p, kind: custom, regions: [r]}
clusters:
  - {name: h100, provider: p, region: r, gpu: H100, domain_size: 8, domains: 1, price_per_gpu_hour: 1.0}
  - {name: h200, provider: p, region: r, gpu: H200, domain_size: 8, domains: 1, price_per_gpu_hour: 9.0}
  - {name: gb200, provider: p, region: r, gpu: GB200, domain_size: 72, domains: 1, price_per_gpu_hour: 0.5}
failures: {random: false}
"""


def run_json(*args: str):
    r = gpufleet("simulate", *args, "--json", "-", "--no-random-failures")
    return r, (json.loads(r.out) if r.code == 0 else None)


def test_alibaba_gpu_spec_allows_every_listed_model_and_only_those(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(TWO_TYPES)
    trace = tmp_path / "pods.csv"
    # GB200 is the cheapest cluster but the three H200|H100 pods may not use it: the first takes the H100
    # domain, the second the H200 one, the third waits for the H100 domain to free (it frees first).
    # The pod with no spec may run anywhere and takes the GB200 rack.
    trace.write_text("name,num_gpu,gpu_milli,gpu_spec,pod_phase,creation_time,deletion_time,scheduled_time\n"
                     "a,8,1000,H200|H100,Succeeded,0,7200,0\n"
                     "b,8,1000,H200|H100,Succeeded,10,7210,10\n"
                     "c,8,1000,H200|H100,Succeeded,20,7220,20\n"
                     "d,8,1000,,Succeeded,30,7230,30\n")
    r, doc = run_json(str(scenario), "--no-workloads", "--trace", str(trace), "--trace-format", "alibaba")
    assert r.code == 0, r.err
    ran = doc["trace_ran_on"]
    assert ran["H100|H200"] == {"H100": 2, "H200": 1}
    assert ran["GB200|H100|H200"] == {"GB200": 1}
    assert doc["finished"] == 4 and doc["failed"] == 0


def test_a_trace_with_no_team_on_a_scenario_with_teams_is_refused_with_a_hint(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("submit_time,gpus,duration_s\n0,8,3600\n")
    r = gpufleet("simulate", str(EXAMPLES / "small.yaml"), "--no-workloads", "--trace", str(trace))
    assert r.code == 2 and "--trace-team" in r.err and "default" in r.err
    r = gpufleet("simulate", str(EXAMPLES / "small.yaml"), "--no-workloads", "--trace", str(trace),
                 "--trace-team", "nosuch")
    assert r.code == 2 and "no team 'nosuch'" in r.err
    r, doc = run_json(str(EXAMPLES / "small.yaml"), "--no-workloads", "--trace", str(trace),
                      "--trace-team", "research", "--until", "2026-03-01")
    assert r.code == 0 and doc["failed"] == 0 and doc["finished"] == 1


def test_a_demand_trace_on_a_scenario_with_teams_never_ends_in_an_internal_error():
    base = ["simulate", str(EXAMPLES / "small.yaml"), "--no-workloads", "--trace", str(FIX / "azure_small.csv"),
            "--trace-format", "azure-llm", "--trace-regions", "us-east-1", "--until", "2026-03-01",
            "--no-random-failures"]
    r = gpufleet(*base)
    assert r.code == 2 and "--trace-team" in r.err
    r = gpufleet(*base, "--trace-team", "serving", "--json", "-")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["failed"] == 0


def test_gavel_current_ten_field_layout_with_per_type_speeds(tmp_path):
    (tmp_path / "simulation_throughputs.json").write_text(json.dumps({
        "v100": {"('ResNet-50', 1)": {"null": 2.0}}, "k80": {"('ResNet-50', 1)": {"null": 0.5}}}))
    trace = tmp_path / "jobs.trace"
    trace.write_text("ResNet-50\tpython main.py\t/work\t--num_steps\t1\t7200\t1\t1\t-1\t0\n"
                     "ResNet-50\tpython main.py\t/work\t--num_steps\t1\t3600\t1\t1\t-1\t60\n")
    from gpufleet.simulation.traces.gavel import load_gavel
    t = load_gavel(str(trace))
    assert [(j.submit_s, j.gpus, j.duration_s) for j in t.jobs] == [(0.0, 1, 3600.0), (60.0, 1, 1800.0)]
    assert t.jobs[0].speeds == {"V100": 1.0, "K80": 0.25}
    nine = tmp_path / "nine.trace"
    nine.write_text("ResNet-50\tpython main.py\t--num_steps\t1\t7200\t1\t1\t-1\t5\n")
    assert [(j.duration_s) for j in load_gavel(str(nine)).jobs] == [3600.0]
    bad = tmp_path / "bad.trace"
    bad.write_text("a\tb\tc\n")
    from gpufleet.simulation.traces.base import TraceError
    try:
        load_gavel(str(bad))
    except TraceError as e:
        assert "expected 10, 9 or 7" in str(e) and "bad.trace:1" in str(e)
    else:
        raise AssertionError("a 3-field row was accepted")


def test_gavel_speeds_steer_work_to_the_faster_type():
    from gpufleet.files import parse_scenario
    from gpufleet.scheduling.translate import TraceMapping, trace_speeds
    from gpufleet.simulation.traces.base import TraceJob
    job = TraceJob(name="g", submit_s=0, gpus=1, duration_s=10, speeds={"H100": 1.0, "H200": 1.6, "K80": 0.2})
    p = parse_scenario(TWO_TYPES, "two-types")
    present = sorted({c.gpu.name for c in p.clusters.values()})
    assert trace_speeds(job, present, TraceMapping()) == {"H100": 1.0, "H200": 1.6}
