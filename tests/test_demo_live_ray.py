"""`gpufleet demo --live --engine ray` for real: provider A a local multi-node Ray cluster, provider B local
processes, a `gpufleet serve` subprocess; A's whole Ray cluster vanishes under a training gang that then
finishes on B from its last checkpoint. And the demo without Ray, with a bad engine, interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import gpufleet
from test_demo_live import processes_mentioning

from gpufleet.cli import demo_live_plan, demo_live_ray, demo_live_workdir
from gpufleet.devtools.procs import alive

INSTALL = "pip install 'gpufleet[ray]'"

# `python -c` with an import hook that hides Ray, then the gpufleet command with the given arguments
WITHOUT_RAY = textwrap.dedent("""\
    import runpy, sys

    class HideRay:
        def find_spec(self, name, path=None, target=None):
            if name == "ray" or name.startswith("ray."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, HideRay())
    sys.argv = ["gpufleet", *sys.argv[1:]]
    runpy.run_module("gpufleet", run_name="__main__")
    """)


def demo(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpufleet", "demo", "--live", "--engine", "ray", *args],
                          check=False, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_the_ray_demo_moves_the_gang_to_provider_b_when_the_whole_ray_cluster_vanishes(tmp_path):
    pytest.importorskip("ray")
    work = tmp_path / "work"
    r = demo("--json", "--workdir", str(work))
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["problems"] == [] and doc["engine"] == "ray"
    job = doc["job"]
    assert job["state"] == "succeeded"
    assert [(a["attempt"], a["provider"], a["cluster"], a["backend"]) for a in job["attempts"]] == \
        [(1, "prov-a", "a-h100", "ray-a"), (2, "prov-b", "b-h100", "local-b")]
    assert [a["outcome"] for a in job["attempts"]] == ["lost", "succeeded"]
    assert job["lost_gpu_hours"] > 0
    # A was stopped once it had checkpointed STOP_AT_STEP; B resumed from A's last checkpoint, none of it lost
    assert job["last_step_on_a"] >= demo_live_plan.STOP_AT_STEP
    assert job["resumed_from_step"] >= job["last_step_on_a"]
    assert job["final_step"] == job["steps"] == demo_live_plan.STEPS
    assert len(job["attempts"][0]["nodes"].split(", ")) == 2  # the gang spanned both of A's Ray nodes
    assert [c["target"] for c in doc["capacity_lost"]] == ["a-h100"]
    assert "backend ray-a unreachable" in doc["capacity_lost"][0]["message"]
    assert doc["server_alive"] is True  # Ray's driver going down did not take the server with it
    assert "requeued" in [e["kind"] for e in doc["events"] if e["job_id"] == job["id"]]
    extra = doc["extra_job"]
    assert extra["state"] == "succeeded" and [a["provider"] for a in extra["attempts"]] == ["prov-b"]
    assert doc["queue"]["other_jobs_lost"] == 0 and doc["queue"]["by_state"] == {"succeeded": 2}
    # the narration went to stderr
    assert "whole Ray cluster vanishes" in r.stderr and "still up" in r.stderr
    # everything it started is gone: no process names Ray's directory (command line or TMPDIR), no server
    temp = Path(doc["clusters"]["prov-a"]["dir"])
    assert temp.name.startswith(demo_live_ray.TEMP_PREFIX)
    assert demo_live_ray.processes_of(temp) == []
    assert processes_mentioning(work, temp) == []
    assert doc["leftover_processes"] == {"prov-a": 0}
    assert not doc["kept"] and not work.exists() and not temp.exists()


def test_without_ray_the_ray_demo_says_what_to_install(tmp_path):
    w = tmp_path / "w"
    cmd = [sys.executable, "-c", WITHOUT_RAY, "demo", "--live", "--engine", "ray", "--workdir", str(w)]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 3, r.stdout + r.stderr
    assert INSTALL in " ".join(r.stderr.split()) and "Ray is not installed" in r.stderr
    assert not w.exists()  # nothing was started or created
    j = subprocess.run([*cmd, "--json"], check=False, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert j.returncode == 3, j.stdout + j.stderr
    doc = json.loads(j.stdout)
    assert doc["ok"] is False and doc["error"] == "ray_missing" and doc["install"] == INSTALL
    assert not w.exists()


def test_an_unknown_engine_is_refused(tmp_path):
    r = gpufleet("demo", "--live", "--engine", "k8s", "--workdir", str(tmp_path / "w"))
    assert r.code == 2 and "slurm, ray" in r.err
    assert not (tmp_path / "w").exists()


def _ctrl_c_on() -> None:
    """A terminal's Ctrl-C reaches the demo even when this test runs under a shell's background job, whose
    children inherit SIGINT ignored (POSIX), as Python then keeps it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until(what: str, cond, p: subprocess.Popen) -> None:
    """Poll COND while the demo P runs (it has deadlines of its own and ends when one passes)."""
    while not cond():
        assert p.poll() is None, f"the demo ended ({p.returncode}) before {what}: {p.communicate()[0]}"
        subprocess.run(["sleep", "0.05"], check=True)


def test_a_killed_ray_demo_is_cleaned_up_by_the_next_run_and_an_interrupted_one_cleans_up(tmp_path):
    pytest.importorskip("ray")
    work = tmp_path / "work"  # an earlier run's work dir, with a file of the user's
    work.mkdir()
    (work / demo_live_workdir.MARKER).write_text(demo_live_workdir.MARKER_TEXT)
    (work / "notes.txt").write_text("mine\n")
    cmd = [sys.executable, "-m", "gpufleet", "demo", "--live", "--engine", "ray", "--workdir", str(work)]
    temps: list[Path] = []
    servers: list[int] = []
    procs = []
    try:
        # a run killed outright once its Ray cluster is up and its server started: what it started stays
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 stdin=subprocess.DEVNULL)
        procs.append(first)
        wait_until("its server started", lambda: demo_live_workdir._demo_servers(work), first)
        temps.append((work / "ray-a").resolve())
        servers = demo_live_workdir._demo_servers(work)
        first.kill()
        first.communicate(timeout=60)
        assert demo_live_workdir._demo_servers(work) == servers  # the server lives on in its own session
        # the next run stops those first, then is interrupted with its own Ray cluster and server up: a
        # Ctrl-C on a terminal, which reaches the demo's whole process group
        second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_ctrl_c_on)
        procs.append(second)
        seen: list[str] = []

        def server_up() -> bool:
            line = second.stdout.readline()
            seen.append(line)
            return "gpufleet serve up" in line or line == ""
        wait_until("its server started", server_up, second)
        assert "previous run's gpufleet serve" in "".join(seen), "".join(seen)
        assert demo_live_ray.processes_of(temps[0]) == [] and not temps[0].exists()
        temps.append((work / "ray-a").resolve())
        assert temps[1] != temps[0] and demo_live_ray.processes_of(temps[1])  # its Ray cluster is running
        os.killpg(second.pid, signal.SIGINT)
        output = "".join(seen) + second.communicate(timeout=300)[0]
        assert second.returncode == 130, output
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert servers and not any(alive(pid) for pid in servers)
    for t in temps:
        assert demo_live_ray.processes_of(t) == [], output
        assert not t.exists()
    assert demo_live_workdir._demo_servers(work) == []
    assert processes_mentioning(work, *temps) == []
    assert sorted(x.name for x in work.iterdir()) == ["notes.txt"]
