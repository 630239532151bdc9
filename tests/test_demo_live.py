"""`gpufleet demo --live` for real: two local Slurm clusters, a `gpufleet serve` subprocess, provider A's
Slurm stopped under a training gang that then finishes on provider B; and `gpufleet dev slurm`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slurm_cluster as sc
from cli_helpers import gpufleet

from gpufleet.cli import demo_live, demo_live_report, demo_live_workdir
from gpufleet.devtools import procs, slurm_dev

INSTALL = "apt-get install slurmctld slurmd slurm-client"


def processes_mentioning(*paths: Path) -> list[str]:
    """Command lines of live processes that name one of these paths (server, slurm daemons, ...)."""
    pids = sorted({p for path in paths for p in procs.mentioning(str(path))})
    return [f"{p}: {' '.join(procs.argv(p))}" for p in pids]


def test_the_live_demo_moves_the_gang_to_provider_b_and_loses_nothing_else(tmp_path):
    why = sc.missing_slurm()
    if why:
        pytest.skip(why)
    work = tmp_path / "work"
    r = subprocess.run([sys.executable, "-m", "gpufleet", "demo", "--live", "--json", "--workdir", str(work)],
                       check=False, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
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


def test_the_live_demo_refuses_a_workdir_that_is_not_its_own(tmp_path):
    repo = tmp_path / "repo"  # e.g. a training repo: `gpufleet demo --live --workdir .` there
    (repo / "checkpoints").mkdir(parents=True)
    (repo / "checkpoints" / "step").write_text("41\n")
    (repo / "server.log").write_text("mine\n")
    r = gpufleet("demo", "--live", "--workdir", str(repo))
    assert r.code == 2
    assert str(repo) in r.err and demo_live_workdir.MARKER in r.err and "not empty" in r.err
    j = gpufleet("demo", "--live", "--json", "--workdir", str(repo))
    assert j.code == 2 and j.json()["error"] == "workdir_refused" and j.json()["workdir"] == str(repo)
    assert (repo / "checkpoints" / "step").read_text() == "41\n" and (repo / "server.log").read_text() == "mine\n"
    assert sorted(p.name for p in repo.iterdir()) == ["checkpoints", "server.log"]  # not even a marker
    a_file = tmp_path / "file"
    a_file.write_text("x")
    f = gpufleet("demo", "--live", "--workdir", str(a_file))
    assert f.code == 2 and "not a directory" in f.err


def test_the_live_demo_accepts_a_new_an_empty_or_its_own_workdir(tmp_path):
    assert demo_live.workdir_problem(tmp_path / "new") is None
    (tmp_path / "empty").mkdir()
    assert demo_live.workdir_problem(tmp_path / "empty") is None
    own = tmp_path / "own"
    own.mkdir()
    (own / demo_live_workdir.MARKER).write_text(demo_live_workdir.MARKER_TEXT)
    (own / "server.log").write_text("an earlier run's\n")
    assert demo_live.workdir_problem(own) is None


def test_removing_the_demos_outputs_leaves_everything_else(tmp_path):
    wd = tmp_path / "w"
    (wd / "checkpoints" / "1").mkdir(parents=True)
    (wd / demo_live_workdir.MARKER).write_text(demo_live_workdir.MARKER_TEXT)
    (wd / "server.log").write_text("log\n")
    (wd / "mine.txt").write_text("mine\n")
    (wd / "data").mkdir()
    demo_live_workdir._remove_outputs(wd, marker=True)
    assert sorted(p.name for p in wd.iterdir()) == ["data", "mine.txt"]


def test_cleanup_stops_every_cluster_even_when_stopping_one_fails(tmp_path, monkeypatch):
    wd = tmp_path / "w"
    wd.mkdir()
    d = demo_live.Demo(wd, lambda msg: None)
    for name in ("prov-a", "prov-b"):
        d.clusters[name] = demo_live.Cluster(name, wd / name, wd / name)
    # a `slurm_dev up` still starting a cluster when the demo was interrupted
    starter = subprocess.Popen(["sleep", "300"], start_new_session=True)
    d.starting["prov-b"] = starter
    downs = []

    def fake_slurm_dev(*args, timeout=180):
        downs.append((args, starter.poll() is not None))
        if args[1] == str(wd / "prov-a"):
            raise subprocess.TimeoutExpired(["slurm_dev", *args], timeout)
        return subprocess.CompletedProcess(args, 0, "", "")

    from gpufleet.cli import demo_live_workdir
    monkeypatch.setattr(demo_live_workdir, "_slurm_dev", fake_slurm_dev)
    monkeypatch.setattr(demo_live.Demo, "leftover_processes", lambda self: {"prov-a": 0, "prov-b": 0})
    res: dict = {}
    try:
        demo_live._cleanup(d, res, keep=False, created=True)
    finally:
        if starter.poll() is None:
            starter.kill()
        starter.wait()
    # both clusters were stopped, each after the starter was killed; the failure is reported, not raised
    assert downs == [(("down", str(wd / "prov-a")), True), (("down", str(wd / "prov-b")), True)]
    assert starter.returncode == -signal.SIGKILL and d.starting == {}
    assert len(res["cleanup_errors"]) == 1 and "prov-a" in res["cleanup_errors"][0]
    assert "did not finish" in res["cleanup_errors"][0]
    assert not wd.exists()
    assert any("cleanup:" in p and "prov-a" in p for p in demo_live_report._problems({**res, "job": {"attempts": [
        {"provider": "prov-a", "outcome": "lost"}]}}))


def test_an_interrupted_start_up_leaves_no_slurm_processes_and_only_the_demos_files_go(tmp_path):
    why = sc.missing_slurm()
    if why:
        pytest.skip(why)
    work = tmp_path / "work"  # an earlier run's work dir, with a file of the user's
    work.mkdir()
    (work / demo_live_workdir.MARKER).write_text(demo_live_workdir.MARKER_TEXT)
    (work / "notes.txt").write_text("mine\n")
    p = subprocess.Popen([sys.executable, "-m", "gpufleet", "demo", "--live", "--workdir", str(work)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    dirs: list[Path] = []
    try:
        # the clusters are being started: both `slurm_dev up` children have written their cluster.json
        while len(dirs) < 2 and p.poll() is None:
            dirs = [(work / n).resolve() for n in ("prov-a", "prov-b") if (work / n / "cluster.json").is_file()]
            time.sleep(0.02)
        assert p.poll() is None, p.communicate()[0]
        p.send_signal(signal.SIGTERM)
        output = p.communicate(timeout=300)[0]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, output
    for d in dirs:
        assert slurm_dev.cluster_processes(d) == set(), output
    assert processes_mentioning(work, *dirs) == []
    assert sorted(x.name for x in work.iterdir()) == ["notes.txt"]
    assert all(not d.exists() for d in dirs)


def test_dev_slurm_up_clean_refuses_a_directory_without_a_cluster(tmp_path):
    mine = tmp_path / "mine"
    (mine / "bin").mkdir(parents=True)
    (mine / "bin" / "tool").write_text("#!/bin/sh\n")
    (mine / "log").mkdir()
    r = gpufleet("dev", "slurm", "up", str(mine), "--clean")
    assert r.code == 2 and str(mine) in r.err and "cluster.json" in r.err
    assert (mine / "bin" / "tool").read_text() == "#!/bin/sh\n" and (mine / "log").is_dir()
    assert not (mine / "cluster.json").exists()
    assert slurm_dev.not_a_cluster_dir(tmp_path / "new") is None
    (tmp_path / "empty").mkdir()
    assert slurm_dev.not_a_cluster_dir(tmp_path / "empty") is None
    (mine / "cluster.json").write_text("{}")
    assert slurm_dev.not_a_cluster_dir(mine) is None
