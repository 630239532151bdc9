"""`gpufleet validate`: clear, positioned errors for every kind of bad input, exit codes 0 and 2."""

import pytest

from builders import a_cluster, a_contract, a_scenario, a_training
from cli_helpers import gpufleet


def write(tmp_path, text: str | bytes, name: str = "s.yaml"):
    p = tmp_path / name
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return str(p)


def test_bundled_examples_are_valid(examples):
    files = sorted(str(p) for p in examples.rglob("*.yaml"))
    assert len(files) >= 2
    r = gpufleet("validate", *files)
    assert r.code == 0, r.err
    assert r.out.count("ok ") == len(files)


def test_valid_file_gets_one_line_summary(tmp_path):
    r = gpufleet("validate", write(tmp_path, a_scenario().yaml()))
    assert r.code == 0
    assert len(r.out.strip().splitlines()) == 1
    assert "1 clusters" in r.out and "32 GPUs" in r.out


@pytest.mark.parametrize("mutate, field, words", [
    (lambda b: b.with_cluster(a_cluster(gpu="GB999")), "clusters[0].gpu", "unknown GPU type 'GB999'"),
    (lambda b: b.with_cluster(a_cluster(ramp=[{"date": "2026-03-01", "domains": 2}, {"date": "2026-02-01", "domains": 4}])),
     "clusters[0].ramp[1].date", "ramp dates must increase"),
    (lambda b: b.with_cluster(a_cluster()).with_contract(a_contract(end="2025-06-01")),
     "contracts[0].end", "on or before it starts"),
    (lambda b: b.with_cluster(a_cluster()).with_contract(a_contract(clusters=["nope"])),
     "contracts[0].clusters[0]", "unknown cluster 'nope'"),
    (lambda b: b.with_cluster(a_cluster()).with_workload(a_training(gpus=16, tp=16)),
     "workloads[0].tp", "largest allowed domain has 8"),
    (lambda b: b.with_cluster(a_cluster()).with_cluster(a_cluster()), "clusters[1].name", "duplicate name 'c1'"),
    (lambda b: b.with_cluster(a_cluster(domains=-1)), "clusters[0].domains", "greater than or equal to 0"),
    (lambda b: b.with_cluster(a_cluster()).with_contract(a_contract(kind="spend_commitment", commitment_usd=0)),
     "contracts[0].commitment_usd", "greater than 0"),
    (lambda b: b.with_cluster(a_cluster(domains=10**30)), "clusters[0].domains", "less than or equal to"),
    (lambda b: b.with_cluster(a_cluster(price_per_gpu_hour=1e308)), "clusters[0].price_per_gpu_hour", "less than"),
    (lambda b: b.with_cluster(a_cluster(domains="many")), "clusters[0].domains", "found 'many'"),
    (lambda b: b.with_cluster(a_cluster(colour="red")), "clusters[0].colour", "unknown field"),
    (lambda b: b.with_cluster(a_cluster()).with_workload(a_training(gpus=12, tp=8)),
     "workloads[0].gpus", "not a whole number of tensor-parallel groups"),
    (lambda b: b.with_cluster(a_cluster(domains=2)).with_workload(a_training(gpus=32, tp=8)),
     "workloads[0].gpus", "largest allowed fabric has 16 GPUs"),
    (lambda b: b.with_cluster(a_cluster(provider="nimbus")), "clusters[0].provider", "unknown provider 'nimbus'"),
])
def test_semantic_and_type_errors_name_file_line_field_and_expectation(tmp_path, mutate, field, words):
    path = write(tmp_path, mutate(a_scenario()).yaml())
    r = gpufleet("validate", path)
    assert r.code == 2
    line = next((ln for ln in r.err.splitlines() if f" {field}:" in ln), None)
    assert line is not None, r.err
    assert path in line and words in line
    # file:line:col precedes the field path
    loc = line.split(" ")[1]
    assert loc.startswith(path + ":") and loc.rstrip(":").split(":")[-1].isdigit()


def test_all_errors_are_reported_at_once(tmp_path):
    b = (a_scenario().set(end="2025-01-01").with_cluster(a_cluster(gpu="XX"))
         .with_cluster(a_cluster("c2")).with_contract(a_contract(clusters=["zz"], provider="aws")))
    r = gpufleet("validate", write(tmp_path, b.yaml()))
    assert r.code == 2
    for field in ("end:", "clusters[0].gpu:", "contracts[0].clusters[0]:"):
        assert field in r.err


def test_structural_errors_are_all_reported(tmp_path):
    b = a_scenario().with_cluster(a_cluster(domains=-1, price_per_gpu_hour="x")).with_cluster(a_cluster("c2", colour=1))
    r = gpufleet("validate", write(tmp_path, b.yaml()))
    assert r.code == 2
    assert r.err.count("error") >= 3


@pytest.mark.parametrize("content, words", [
    ("", "is empty"),
    ("   \n# only a comment\n", "is empty"),
    (b"\x00\xff\xfe\x01binary", "not UTF-8"),
    ("name: [unclosed", "invalid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
    ("42", "expected a mapping"),
    ("name: x\nname: y\nclusters: []\n", "invalid YAML"),
    ("a: &a [1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
     "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
     "h: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n", "invalid YAML"),
    ("[" * 5000, "invalid YAML"),
])
def test_junk_never_crashes(tmp_path, content, words):
    path = write(tmp_path, content)
    r = gpufleet("validate", path)
    assert r.code == 2
    assert path in r.err and words in r.err


def test_unreadable_inputs(tmp_path):
    r = gpufleet("validate", str(tmp_path / "missing.yaml"), str(tmp_path))
    assert r.code == 2
    assert "no such file" in r.err and "is a directory" in r.err


def test_mixed_good_and_bad_files_exit_2_but_report_both(tmp_path, examples):
    bad = write(tmp_path, "name: [")
    r = gpufleet("validate", str(examples / "small.yaml"), bad)
    assert r.code == 2
    assert "ok" in r.out and bad in r.err


def test_json_output_lists_problems(tmp_path):
    bad = write(tmp_path, a_scenario().with_cluster(a_cluster(gpu="XX")).yaml())
    r = gpufleet("validate", "--json", bad)
    assert r.code == 2
    doc = r.json()
    assert doc["ok"] is False
    p = doc["files"][0]["problems"][0]
    assert p["field"] == "clusters[0].gpu" and p["line"] > 0 and p["file"] == bad


def test_job_files_validate(tmp_path):
    good = write(tmp_path, "name: j\nkind: training\ngpus: GB200:144\ntp: 72\n", "j.yaml")
    assert gpufleet("validate", good).code == 0
    bad = write(tmp_path, "name: j\nkind: training\ngpus: GB200:100\ntp: 72\n", "k.yaml")
    r = gpufleet("validate", bad)
    assert r.code == 2 and "tensor-parallel" in r.err
    bad2 = write(tmp_path, "name: j\ngpus: lots\n", "l.yaml")
    r = gpufleet("validate", bad2)
    assert r.code == 2 and "expected TYPE:COUNT" in r.err and "gpus" in r.err


def _scenario_with_two_problems(tmp_path):
    text = open("examples/posttrain-crunch.yaml", encoding="utf-8").read()
    text = text.replace("    gpu: H100\n    domains: 128                  # 1,024 GPUs in 8-GPU HGX nodes, one fabric",
                        "    gpu: H999\n    domains: 128", 1)                       # a cross-reference problem
    text = text.replace("    domains: 64                   # 512 GPUs, one fabric", "    domains: 64\n    domain_size: -3", 1)
    f = tmp_path / "two.yaml"
    f.write_text(text, encoding="utf-8")
    return f


def test_field_and_reference_problems_show_in_one_pass_without_follow_ons(tmp_path):
    r = gpufleet("validate", str(_scenario_with_two_problems(tmp_path)), "--json")
    assert r.code == 2
    problems = r.json()["files"][0]["problems"]
    fields = [p["field"] for p in problems]
    assert fields == ["clusters[0].gpu", "clusters[2].domain_size"]      # both, in file order, with lines
    assert all(p["line"] for p in problems)
    # not reported: the contracts naming the two broken clusters, nor the gang that fits no fabric left
    assert not any("unknown cluster" in p["message"] or "fabric" in p["message"] for p in problems)


def test_a_whole_job_check_points_at_its_field_and_never_prints_the_job_back(tmp_path):
    f = tmp_path / "j.yaml"
    f.write_text("name: j\nkind: training\ngpus: H100:8\ntp: 3\ncommand: run\n", encoding="utf-8")
    r = gpufleet("validate", str(f))
    assert r.code == 2
    assert f"{f}:4:1: tp: 8 GPUs are not a whole number of tensor-parallel groups of 3" in r.err
    assert "{'name'" not in r.err
