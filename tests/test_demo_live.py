"""`gpufleet demo --live` for real: two local Slurm clusters, a `gpufleet serve` subprocess, provider A's
Slurm stopped under a training gang that then finishes on provider B; and `gpufleet dev slurm`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import slurm_cluster as sc
from cli_helpers import gpufleet

from gpufleet.devtools import slurm_dev

INSTALL = "apt-get install slurmctld slurmd slurm-client"


def processes_mentioning(*paths: Path) -> list[str]:
    """Command lines of live processes that name one of these paths (server, slurm daemons, ...)."""
    needles = [str(p) for p in paths]
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in cmd for n in needles) and slurm_dev.proc_start(int(pid)) is not None:
            found.append(f"{pid}: {cmd}")
    return found


def test_the_live_demo_moves_the_gang_to_provider_b_and_loses_nothing_else(tmp_path):
    why = sc.missing_slurm()
    if why:
        pytest.skip(why)
    work = tmp_path / "work"
    r = subprocess.run([sys.executable, "-m", "gpufleet", "demo", "--live", "--json", "--workdir", str(work)],
                       capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["problems"] == []
    job = doc["job"]
    assert job["state"] == "succeeded"
    assert [(a["attempt"], a["provider"], a["cluster"]) for a in job["attempts"]] == \
        [(1, "prov-a", "a-h100"), (2, "prov-b", "b-h100")]
    assert job["attempts"][0]["outcome"] == "lost" and job["attempts"][1]["outcome"] == "succeeded"
    assert job["lost_gpu_hours"] > 0
    assert job["resumed_from_step"] >= 1 and job["resumed_from_step"] >= job["last_step_on_a"]
    assert job["final_step"] == job["steps"]
    assert [c["target"] for c in doc["capacity_lost"]] == ["a-h100"]
    extra = doc["extra_job"]
    assert extra["state"] == "succeeded" and extra["attempt"] == 1
    assert [a["provider"] for a in extra["attempts"]] == ["prov-b"]
    assert doc["queue"]["other_jobs_lost"] == 0 and doc["queue"]["by_state"] == {"succeeded": 2}
    kinds = [e["kind"] for e in doc["events"] if e["job_id"] == job["id"]]
    assert "requeued" in kinds
    # everything it started is stopped: no slurmctld, slurmd or server left for its directories
    dirs = [Path(c["dir"]) for c in doc["clusters"].values()]
    assert len(dirs) == 2
    for d in dirs:
        assert slurm_dev.cluster_processes(d) == set()
    assert processes_mentioning(work, *dirs) == []
    assert doc["leftover_processes"] == {"prov-a": 0, "prov-b": 0}
    assert not doc["kept"] and not work.exists()  # without --keep nothing stays behind
    assert all(not d.exists() for d in dirs)


def test_without_slurm_the_live_demo_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm client commands on this PATH
    r = gpufleet("demo", "--live", "--workdir", str(tmp_path / "w"))
    assert r.code == 3
    assert INSTALL in r.err and "sinfo" in r.err
    assert not (tmp_path / "w").exists()  # nothing was started or created
    j = gpufleet("demo", "--json", "--live")
    assert j.code == 3
    doc = j.json()
    assert doc["ok"] is False and doc["error"] == "slurm_missing" and doc["install"] == INSTALL
    assert "sbatch" in doc["missing"]


def test_dev_slurm_status_of_a_directory_without_a_cluster(tmp_path):
    r = gpufleet("dev", "slurm", "status", str(tmp_path / "nothing"))
    assert r.code == 3 and "no cluster in" in r.out
    j = gpufleet("dev", "slurm", "status", str(tmp_path / "nothing"), "--json")
    assert j.code == 3 and j.json()["running"] is False
    assert gpufleet("dev", "slurm", "env", str(tmp_path / "nothing")).code == 3
    assert gpufleet("dev", "slurm", "down", str(tmp_path / "nothing")).code == 0  # safe to repeat
    bad = gpufleet("dev", "slurm", "sideways", str(tmp_path))
    assert bad.code == 2 and "invalid choice" in bad.err


def test_dev_slurm_up_without_slurm_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    r = gpufleet("dev", "slurm", "up", str(tmp_path / "c"))
    assert r.code == 3 and INSTALL in r.err
