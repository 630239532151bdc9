"""Trace importers: exact jobs and demand from hand-written fixtures, clear errors on malformed files,
and row accounting on the public trace files in ../shared (skipped when that folder is absent)."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import pytest

from gpufleet.simulation.traces.alibaba import load_alibaba
from gpufleet.simulation.traces.azure_llm import load_azure_llm
from gpufleet.simulation.traces.base import DemandPoint, ImportReport, TraceError, TraceJob
from gpufleet.simulation.traces.demand import demand_series
from gpufleet.simulation.traces.gavel import load_gavel
from gpufleet.simulation.traces.generic_csv import load_generic_csv
from gpufleet.simulation.traces.mooncake import load_mooncake
from gpufleet.simulation.traces.philly import load_philly
from gpufleet.simulation.traces.registry import DEMAND_FORMATS, FORMATS, JOB_FORMATS, load_trace

FIX = Path(__file__).parent / "fixtures" / "traces"


def fix(name: str) -> str:
    return str(FIX / name)


def rows(jobs: list[TraceJob]) -> list[tuple]:
    """(name, submit_s, gpus, duration_s, queue) per job, the fields every job importer fills."""
    return [(j.name, j.submit_s, j.gpus, j.duration_s, j.queue) for j in jobs]


def steps(points: list[DemandPoint]) -> list[tuple[float, int]]:
    return [(p.t_s, p.replicas) for p in points]


def balanced(r: ImportReport) -> bool:
    return r.rows_read == r.rows_used + r.rows_skipped


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


def raises_at(path: str, line: int | None, *fragments: str):
    """Context manager: TraceError naming the file (and line) and each fragment."""
    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(TraceError)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            done = self.ctx.__exit__(*exc)
            msg = str(self.info.value)
            assert Path(path).name in msg, msg
            if line is not None:
                assert f":{line}:" in msg, msg
            for f in fragments:
                assert f in msg, msg
            return done
    return _Check()


# ---- Philly ----------------------------------------------------------------------------------------------

def test_philly_shifts_to_first_used_job_sorts_and_skips_with_reasons():
    t = load_philly(fix("philly_small.csv"))
    assert rows(t.jobs) == [("philly-1", 0.0, 1, 120.0, "vcB"), ("philly-0", 30.0, 2, 600.0, "vcA"),
                            ("philly-3", 30.0, 4, 300.0, "vcB"), ("philly-5", 3600.0, 8, 3600.0, "vcA")]
    assert all(j.group == 0 and j.gpu_type is None for j in t.jobs)
    r = t.report
    assert (r.rows_read, r.rows_used) == (6, 4)  # the trailing blank line is not a row
    assert dict(r.skipped) == {"zero GPUs (CPU-only)": 1, "duration <= 0": 1}
    assert balanced(r) and r.notes


PHILLY_HEAD = "timestamp,duration,num_gpus,gpu_time,cluster\n"


@pytest.mark.parametrize("text,line,fragment", [
    (PHILLY_HEAD + "2020-01-01 00:00:00,ten,1,10,v\n", 2, "expected a number"),
    (PHILLY_HEAD + "2020-01-01 00:00:00,10,1.5,10,v\n", 2, "whole number"),
    (PHILLY_HEAD + "2020-01-01 00:00:00,10,1,10,v\n2020-01-01,1,1,1,v\n", 3, "YYYY-MM-DD HH:MM:SS"),
    (PHILLY_HEAD + "2020-01-01 00:00:00,10,1,10\n", 2, "expected 5 fields, found 4"),
    ("timestamp,duration,gpu_time,cluster\n2020-01-01 00:00:00,10,10,v\n", 1, "missing num_gpus"),
    ("", 1, "empty file"),
    (PHILLY_HEAD + "2020-01-01 00:00:00,nan,1,10,v\n", 2, "expected a number"),
])
def test_philly_malformed_file_names_file_and_line(tmp_path, text, line, fragment):
    path = write(tmp_path, "bad_philly.csv", text)
    with raises_at(path, line, fragment):
        load_philly(path)


def test_non_utf8_and_missing_file_raise_trace_error(tmp_path):
    path = write(tmp_path, "latin.csv", b"timestamp,duration,num_gpus,gpu_time,cluster\n"
                                        b"2020-01-01 00:00:00,1,1,1,v\xe9\n")
    with raises_at(path, 2, "expected UTF-8"):
        load_philly(path)
    with raises_at(str(tmp_path / "absent.csv"), None, "cannot be read"):
        load_philly(str(tmp_path / "absent.csv"))


# ---- Gavel -----------------------------------------------------------------------------------------------

def test_gavel_durations_from_parent_throughputs_and_skips():
    t = load_gavel(fix("gavel/seed7/vcx.trace"))
    assert rows(t.jobs) == [("gavel-vcx-0", 0.0, 1, 500.0, "vcx"), ("gavel-vcx-1", 0.0, 1, 100.0, "vcx"),
                            ("gavel-vcx-2", 150.5, 2, 80.0, "vcx")]
    r = t.report
    assert dict(r.skipped) == {"scale_factor 0 (no GPUs; Gavel skips these)": 1,
                               "(job_type, scale_factor) not in the v100 throughputs": 1}
    assert (r.rows_read, r.rows_used) == (5, 3) and balanced(r)
    assert any("ModelA (batch size 8) on 4 GPUs" in n for n in r.notes)


def test_gavel_other_worker_type_and_explicit_throughputs():
    t = load_gavel(fix("gavel/seed7/vcx.trace"), throughputs=fix("gavel/simulation_throughputs.json"),
                   worker_type="k80")
    assert rows(t.jobs) == [("gavel-vcx-0", 0.0, 1, 1000.0, "vcx")]
    assert dict(t.report.skipped) == {"throughput <= 0 on k80": 1,
                                      "scale_factor 0 (no GPUs; Gavel skips these)": 1,
                                      "(job_type, scale_factor) not in the k80 throughputs": 2}
    assert balanced(t.report)


def test_gavel_errors(tmp_path):
    lone = tmp_path / "a" / "b"
    lone.mkdir(parents=True)
    trace = shutil.copy(fix("gavel/seed7/vcx.trace"), lone / "vcx.trace")
    with raises_at(str(trace), None, "throughputs option"):
        load_gavel(str(trace))
    tputs = fix("gavel/simulation_throughputs.json")
    with raises_at(tputs, None, "'a100'", "k80, v100"):
        load_gavel(str(trace), throughputs=tputs, worker_type="a100")
    broken = write(tmp_path, "t.json", '{"v100": {\n  "x": }\n}')
    with raises_at(broken, 2, "expected JSON"):
        load_gavel(str(trace), throughputs=broken)
    short = write(tmp_path, "short.trace", "ModelB\tcmd\t-n\t0\t50\t1.0\t1\nModelB\tcmd\t-n\t0\t50\t2.0\n")
    with raises_at(short, 2, "expected 7 tab-separated fields", "found 6"):
        load_gavel(short, throughputs=tputs)
    bad = write(tmp_path, "bad.trace", "ModelB\tcmd\t-n\t0\tmany\t1.0\t1\n")
    with raises_at(bad, 1, "total_steps", "'many'"):
        load_gavel(bad, throughputs=tputs)


# ---- Alibaba ---------------------------------------------------------------------------------------------

def test_alibaba_pods_to_jobs_with_skips_and_fractional_note():
    t = load_alibaba(fix("alibaba_small.csv"))
    assert rows(t.jobs) == [("pod-b", 0.0, 1, 600.0, None), ("pod-a", 400.0, 1, 8900.0, None),
                            ("pod-f", 600.0, 2, 1100.0, None)]
    assert [j.gpu_type for j in t.jobs] == ["T4|P100", None, None]  # every model gpu_spec allows
    r = t.report
    assert dict(r.skipped) == {"CPU-only pod": 2, "never scheduled (Pending)": 1, "duration <= 0": 1}
    assert (r.rows_read, r.rows_used) == (7, 3) and balanced(r)
    assert "1 fractional-GPU pods rounded up to 1 GPU" in r.notes


def test_alibaba_request_list_without_times_is_refused(tmp_path):
    with raises_at(fix("alibaba_multigpu.csv"), 1, "no times", "request list"):
        load_alibaba(fix("alibaba_multigpu.csv"))
    head = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time," \
           "scheduled_time\n"
    bad = write(tmp_path, "pods.csv",
                head + "p,1,1,1,1000,,LS,Running,0,10,0\np,1,1,1,1000,,LS,Running,x,10,0\n")
    with raises_at(bad, 3, "creation_time", "'x'"):
        load_alibaba(bad)


# ---- demand (Azure, Mooncake) ----------------------------------------------------------------------------

def test_demand_series_hand_computed():
    # 600 tokens per window: 15 tokens -> 1; a request with no tokens still needs 1; 2,500 -> ceil(4.17) = 5
    points = demand_series([(0.0, 10), (59.9, 5), (61.0, 0), (200.0, 2500)], 60.0, 10.0)
    assert steps(points) == [(0.0, 1), (120.0, 0), (180.0, 5), (240.0, 0)]
    assert demand_series([], 60.0, 10.0) == []


def test_azure_llm_windows_and_truncated_fractions():
    # capacity 10 s x 100 tokens/s = 1,000 tokens per window; t=0 is 08:00:00.123456
    t = load_azure_llm(fix("azure_small.csv"), window_s=10.0, tokens_per_s_per_replica=100.0)
    assert steps(t.points) == [(0.0, 2), (10.0, 1), (20.0, 0), (30.0, 3), (40.0, 0), (50.0, 1), (60.0, 0)]
    assert t.window_s == 10.0
    assert (t.report.rows_read, t.report.rows_used) == (6, 6) and balanced(t.report)
    assert any("100 tokens/s per replica" in n for n in t.report.notes)


def test_azure_llm_defaults_note_the_replica_assumption():
    t = load_azure_llm(fix("azure_small.csv"))
    assert steps(t.points) == [(0.0, 1), (60.0, 0)]
    assert any(n.startswith("10,000 tokens/s per replica: an 8-GPU H100") for n in t.report.notes)


@pytest.mark.parametrize("body,line,fragment", [
    ("2024-01-10 08:00:00,1,1\n2024-01-10T08:00:01,1,1\n", 3, "TIMESTAMP"),
    ("2024-01-10 08:00:00,1,-4\n", 2, "0 or more tokens"),
    ("2024-01-10 08:00:00,1\n", 2, "expected 3 fields"),
])
def test_azure_llm_malformed(tmp_path, body, line, fragment):
    path = write(tmp_path, "azure_bad.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n" + body)
    with raises_at(path, line, fragment):
        load_azure_llm(path)
    with raises_at(path, None, "window_s"):
        load_azure_llm(path, window_s=0)


def test_mooncake_windows_from_milliseconds():
    t = load_mooncake(fix("mooncake_small.jsonl"), window_s=1.0, tokens_per_s_per_replica=100.0)
    assert steps(t.points) == [(0.0, 2), (1.0, 1), (2.0, 0), (3.0, 6), (4.0, 0)]
    assert (t.report.rows_read, t.report.rows_used) == (4, 4) and balanced(t.report)


@pytest.mark.parametrize("line2,fragment", [
    ('{"timestamp": 5, "input_length": 3\n', "invalid JSON"),
    ('{"timestamp": 5, "input_length": 3}\n', "'output_length'"),
    ('{"timestamp": 5, "input_length": "3", "output_length": 1}\n', "input_length"),
    ('[1, 2]\n', "JSON object"),
])
def test_mooncake_malformed_line(tmp_path, line2, fragment):
    path = write(tmp_path, "moon.jsonl", '{"timestamp": 0, "input_length": 1, "output_length": 1}\n' + line2)
    with raises_at(path, 2, fragment):
        load_mooncake(path)


# ---- generic CSV -----------------------------------------------------------------------------------------

def test_generic_csv_all_columns():
    t = load_generic_csv(fix("generic_small.csv"))
    assert rows(t.jobs) == [("csv-1", 0.0, 1, 60.0, None), ("serve-b", 0.0, 2, 1e9, "prod"),
                            ("train-a", 60.0, 8, 7200.0, "research")]
    train = t.jobs[2]
    assert (train.group, train.priority, train.kind, train.gpu_type) == (8, 10, "training", "H100")
    assert (t.jobs[0].kind, t.jobs[0].group, t.jobs[1].kind) == ("batch", 0, "inference")
    assert dict(t.report.skipped) == {"gpus < 1 (CPU-only)": 1, "duration_s <= 0": 1}
    assert balanced(t.report) and "ignored columns: owner" in t.report.notes


def test_generic_csv_iso_times_with_zones():
    t = load_generic_csv(fix("generic_iso.csv"))
    assert rows(t.jobs) == [("csv-1", 0.0, 1, 50.0, None), ("csv-0", 60.0, 4, 100.0, None),
                            ("csv-2", 60.0, 2, 10.0, None)]


@pytest.mark.parametrize("body,line,fragment", [
    ("10,1,5\n2024-05-01T00:00:00,1,5\n", 3, "mixed formats"),
    ("yesterday,1,5\n", 2, "ISO 8601"),
    ("10,1,5,x\n", 2, "expected 3 fields"),
])
def test_generic_csv_malformed(tmp_path, body, line, fragment):
    path = write(tmp_path, "mine.csv", "submit_time,gpus,duration_s\n" + body)
    with raises_at(path, line, fragment):
        load_generic_csv(path)


@pytest.mark.parametrize("body,line,fragment", [
    ("a,0,2,5,1,weird\n", 2, "kind"),
    ("a,0,2,5,4,batch\n", 2, "tp"),
    ("a,0,2,5,1,batch\na,1,2,5,1,batch\n", 3, "first on line 2"),
])
def test_generic_csv_bad_optional_columns(tmp_path, body, line, fragment):
    path = write(tmp_path, "mine.csv", "name,submit_time,gpus,duration_s,tp,kind\n" + body)
    with raises_at(path, line, fragment):
        load_generic_csv(path)


# ---- registry --------------------------------------------------------------------------------------------

def test_registry_names_every_format_once():
    assert set(FORMATS) == JOB_FORMATS | DEMAND_FORMATS and not JOB_FORMATS & DEMAND_FORMATS
    assert load_trace(fix("philly_small.csv"), "philly").report.rows_used == 4
    assert load_trace(fix("azure_small.csv"), "azure-llm", window_s=10.0).window_s == 10.0


def test_registry_unknown_format_and_option(tmp_path):
    known = "alibaba, azure-llm, csv, gavel, mooncake, philly"
    with raises_at(fix("philly_small.csv"), None, "'slurm'", known):
        load_trace(fix("philly_small.csv"), "slurm")
    with raises_at(fix("philly_small.csv"), None, "bad options"):
        load_trace(fix("philly_small.csv"), "philly", window_s=5)


# ---- the public trace files (skipped without ../shared) --------------------------------------------------

def test_real_philly_every_row_accounted_and_gpu_time_matches(shared):
    path = shared / "data/traces/philly_pollux/philly.csv"
    t = load_philly(str(path))
    r = t.report
    assert r.rows_read == 82_247 and balanced(r)
    with open(path, newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == r.rows_read
    used = [table[int(j.name.split("-")[1])] for j in t.jobs]
    assert sum(j.gpus * j.duration_s for j in t.jobs) == pytest.approx(
        sum(float(row["gpu_time"]) for row in used), rel=1e-6)
    assert t.jobs[0].submit_s == 0 and all(a.submit_s <= b.submit_s for a, b in zip(t.jobs, t.jobs[1:]))


def test_real_gavel_seed0_files_load_with_parent_throughputs(shared):
    folder = shared / "data/traces/gavel_philly_vc/seed0"
    total = 0
    for trace in sorted(folder.glob("*.trace")):
        t = load_gavel(str(trace))
        assert balanced(t.report) and t.report.rows_used > 0, trace.name
        assert all(j.queue == trace.stem and j.duration_s > 0 for j in t.jobs)
        total += t.report.rows_read
    assert total == 15_264


def test_real_alibaba_default_pod_list(shared):
    t = load_alibaba(str(shared / "data/traces/alibaba_gpu_v2023/openb_pod_list_default.csv"))
    r = t.report
    assert r.rows_read == 8_152 and balanced(r)
    # PROVENANCE: 1,088 CPU-only and 897 Pending pods; 36 Pending pods are CPU-only and counted as CPU-only
    assert dict(r.skipped) == {"CPU-only pod": 1_088, "never scheduled (Pending)": 861}
    assert r.rows_used == 8_152 - 1_088 - 861 == 6_203
    # PROVENANCE: 3,078 fractional one-GPU pods, of which 505 are Pending
    assert "2573 fractional-GPU pods rounded up to 1 GPU" in r.notes
    multigpu = str(shared / "data/traces/alibaba_gpu_v2023/openb_pod_list_multigpu20.csv")
    with raises_at(multigpu, 1, "no times"):
        load_alibaba(multigpu)


def test_real_azure_conversation_trace(shared):
    t = load_azure_llm(str(shared / "data/traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv"))
    assert t.report.rows_read == 19_366 and balanced(t.report)
    assert t.points and t.points[0].t_s == 0 and max(p.replicas for p in t.points) > 0
    assert t.points[-1].replicas == 0 and math.isclose(t.points[-1].t_s, 3_540.0)


def test_real_mooncake_synthetic_trace(shared):
    t = load_mooncake(str(shared / "data/traces/mooncake_fast25/synthetic_trace.jsonl"))
    assert t.report.rows_read == 3_993 and balanced(t.report)
    assert max(p.replicas for p in t.points) > 0
