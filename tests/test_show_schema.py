"""`show` reports capacity over time, contract totals and workloads; `schema` prints JSON Schema."""

import json

import pytest

from cli_helpers import gpufleet


def test_show_json_capacity_follows_the_ramp(examples):
    r = gpufleet("show", str(examples / "small.yaml"), "--json")
    assert r.code == 0
    doc = r.json()
    cap = doc["capacity"]
    assert cap["months"][0] == "2026-01" and len(cap["months"]) == 12
    aws = cap["gpus_by_provider"]["aws"]
    assert aws[0] == 8 * 72 and aws[2] == 16 * 72 and aws[5] == 24 * 72
    assert cap["gpus_by_provider"]["coreweave"][0] == 8 * 64  # 64 usable of 72
    assert cap["total_gpus"][0] == sum(v[0] for v in cap["gpus_by_provider"].values())


def test_show_contract_totals(examples):
    doc = gpufleet("show", str(examples / "small.yaml"), "--json").json()
    by_name = {c["name"]: c for c in doc["contracts"]}
    assert by_name["cw-reserved"]["committed_usd"] == pytest.approx(256 * 4.20 * 365 * 24)
    assert by_name["aws-commit"]["committed_usd"] == 60_000_000
    assert by_name["aws-commit"]["avg_gpus_covered"] == pytest.approx(60e6 / 4.5 / (365 * 24))
    total = doc["contract_totals"]["committed_usd"]
    assert total == pytest.approx(60e6 + 256 * 4.20 * 365 * 24)
    kinds = {w["kind"] for w in doc["workloads"]}
    assert kinds == {"training", "inference", "batch"}


def test_show_table_and_bad_file(examples, tmp_path):
    r = gpufleet("show", str(examples / "small.yaml"))
    assert r.code == 0 and "coreweave" in r.out and "Contracts" in r.out
    bad = tmp_path / "x.yaml"
    bad.write_text("name: [")
    assert gpufleet("show", str(bad)).code == 2


@pytest.mark.parametrize("kind, key", [("scenario", "clusters"), ("job", "gpus")])
def test_schema_is_json_schema(kind, key):
    r = gpufleet("schema", kind)
    assert r.code == 0
    doc = json.loads(r.out)
    assert doc["type"] == "object" and key in doc["properties"]
    assert gpufleet("schema", "nonsense").code == 2
