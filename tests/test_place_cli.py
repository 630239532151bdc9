"""`gpufleet place`: exit 0 placed, 3 cannot be placed now (with the reason), 2 bad input; --json keys."""

import pytest

from cli_helpers import gpufleet

FRONTIER = "frontier-lab.yaml"


def test_big_gang_placed_in_whole_racks(examples):
    r = gpufleet("place", str(examples / FRONTIER), str(examples / "jobs/pretrain-gb200-16k.yaml"),
                 "--at", "2027-03-01", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["placed"] and doc["gpu"] in ("GB200", "GB300") and doc["tp"] == 72
    assert sum(d["gpus"] for d in doc["domains"]) == 16416
    assert all(d["gpus"] == 72 for d in doc["domains"])
    assert doc["cost_per_gpu_hour"] is not None and doc["list_price_per_gpu_hour"] > 0
    feasible = [v for v in doc["explanation"] if v["feasible"]]
    assert feasible and all(set(v["scores"]) >= {"cost", "packing"} for v in feasible)
    rejected = [v for v in doc["explanation"] if not v["feasible"]]
    assert all(v["filter"] and v["reason"] for v in rejected)


def test_job_that_fits_nowhere_exits_3_with_reason(examples):
    r = gpufleet("place", str(examples / FRONTIER), str(examples / "jobs/too-big.yaml"), "--at", "2027-03-01")
    assert r.code == 3
    assert "cannot place" in r.out and "exceeds this cluster's fabric" in r.out




def test_ramp_shortfall_message(tmp_path, examples):
    job = tmp_path / "j.yaml"
    job.write_text("name: t\nkind: training\nteam: pretrain\ngpus: GB200:1152\ntp: 72\n")
    r = gpufleet("place", str(examples / "small.yaml"), str(job), "--at", "2026-01-15", "--json")
    assert r.code == 3
    doc = r.json()
    assert doc["placed"] is False and doc["cluster"] is None
    assert "needs 16 group(s) of 72 GPUs in one fabric, 8 free now" in doc["reason"]
    r = gpufleet("place", str(examples / "small.yaml"), str(job), "--at", "2026-06-15", "--json")
    assert r.code == 0 and r.json()["cluster"] == "aws-use1-gb200"


def test_inference_replicas_spread_over_providers(examples):
    r = gpufleet("place", str(examples / FRONTIER), str(examples / "jobs/chat-inference.yaml"),
                 "--at", "2027-03-01", "--json")
    assert r.code == 0, r.out
    doc = r.json()
    assert len(doc["providers"]) >= 2 and not doc["unplaced"]
    assert all(rep["region"] in rep["replica"] or rep["area"] in rep["replica"] for rep in doc["replicas"])
    assert len(doc["replicas"]) == 800 + 600 + 300


def test_batch_job_and_profiles(examples):
    job = str(examples / "jobs/batch-eval-1gpu.yaml")
    cost = gpufleet("place", str(examples / FRONTIER), job, "--at", "2027-03-01", "--json").json()
    base = gpufleet("place", str(examples / FRONTIER), job, "--at", "2027-03-01", "--json",
                    "--profile", "list-price").json()
    assert cost["placed"] and base["placed"]
    assert cost["cost_per_gpu_hour"] <= base["list_price_per_gpu_hour"]
    assert base["profile"] == "list-price"


@pytest.mark.parametrize("args, words", [
    (["--at", "yesterday"], "--at"),
    (["--profile", "fastest"], "unknown placement profile"),
    (["--spent", "nope=1"], "--spent"),
])
def test_bad_options_exit_2(examples, args, words):
    r = gpufleet("place", str(examples / "small.yaml"), str(examples / "jobs/batch-eval-1gpu.yaml"), *args)
    assert r.code == 2 and words in r.err


def test_bad_job_file_exits_2(tmp_path, examples):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ngpus: GB200:10\ntp: 4\n")
    r = gpufleet("place", str(examples / "small.yaml"), str(bad))
    assert r.code == 2 and str(bad) in r.err


def test_spent_input_changes_the_effective_cost(examples):
    job = str(examples / "jobs/batch-eval-1gpu.yaml")
    fresh = gpufleet("place", str(examples / "small.yaml"), job, "--at", "2026-06-01", "--json",
                     "--profile", "cost").json()
    assert fresh["cluster"] in ("oci-h100", "lambda-h100")
