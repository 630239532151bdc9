"""The Slurm test fixture itself: real slurmctld + slurmd clusters from scripts/slurm-dev.
Every test skips when the machine lacks Slurm's binaries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import slurm_cluster as sc
from slurm_cluster import CONTROLLER_DOWN, ROOT, missing_slurm, parse_kv

from gpufleet.devtools import procs

# the fixtures (pytest finds them as attributes of this module)
slurm_clusters = sc.slurm_clusters
slurm_cluster = sc.slurm_cluster


def _procs_with(marker: str) -> list[int]:
    return procs.mentioning(marker)


def _wait_procs(marker: str, present: bool, timeout: float = 10) -> bool:
    """Whether processes with `marker` in their command line are there (present=True) or gone, in time."""
    end = time.monotonic() + timeout
    while bool(_procs_with(marker)) != present:
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def test_parse_kv():
    d = parse_kv("JobId=7 JobName=wrap JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0 "
                 "TRES=cpu=1,node=1 Comment=a b=c Power=\n")
    assert d["JobState"] == "FAILED" and d["ExitCode"] == "3:0" and d["TRES"] == "cpu=1,node=1"
    assert d["Comment"] == "a b=c" and d["Power"] == ""


def test_skip_reason_names_missing_binaries(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    why = missing_slurm()
    assert why and "sinfo" in why and "apt-get install slurmctld slurmd slurm-client" in why


def test_two_clusters_at_once(slurm_clusters):
    a = slurm_clusters("prov-a", nodes=2)
    b = slurm_clusters("prov-b", nodes=3, gpus=4)
    assert a.controller_port != b.controller_port and a.conf != b.conf
    assert not set(a.node_ports.values()) & set(b.node_ports.values())
    assert a.node_states() == {"n1": "idle", "n2": "idle"}
    assert b.node_states() == {"n1": "idle", "n2": "idle", "n3": "idle"}
    assert "ClusterName             = prov-b" in b.run("scontrol", "show", "config", check=True).stdout
    assert b.node("n3")["Gres"] == "gpu:4"
    ja = a.sbatch(wrap="echo $SLURM_CLUSTER_NAME")
    jb = b.sbatch(wrap="echo $SLURM_CLUSTER_NAME")
    assert a.wait_job(ja)["JobState"] == "COMPLETED" and b.wait_job(jb)["JobState"] == "COMPLETED"
    assert a.output(ja).strip() == "prov-a" and b.output(jb).strip() == "prov-b"
    assert [j["cluster"] for j in a.squeue_json()] == ["prov-a"]


def test_gpu_job_sees_its_gpus(slurm_cluster):
    c = slurm_cluster
    assert c.node("n1")["Gres"] == "gpu:8"
    job = c.sbatch("--gres=gpu:4", "-N1",
                   wrap="echo CVD=$CUDA_VISIBLE_DEVICES; echo JOB_GPUS=$SLURM_JOB_GPUS; "
                        "echo NODE=$SLURMD_NODENAME; echo TOPO=$SLURM_TOPOLOGY_ADDR")
    info = c.wait_job(job)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0"
    lines = c.output(job).split()
    assert "CVD=0,1,2,3" in lines and "JOB_GPUS=0,1,2,3" in lines
    node = next(x for x in lines if x.startswith("NODE="))[5:]
    assert node in c.nodes and f"TOPO=top.s0.{node}" in lines
    (j,) = [j for j in c.squeue_json() if j["job_id"] == job]
    assert (j["job_state"], j["exit_code"], j["tres_per_node"]) == ("COMPLETED", 0, "gres:gpu:4")


def test_two_node_job_runs_srun_on_both(slurm_cluster):
    c = slurm_cluster
    job = c.sbatch("--gres=gpu:8", "-N2", "--ntasks-per-node=1",
                   wrap='srun bash -c "echo \\$SLURMD_NODENAME \\$SLURM_PROCID \\$CUDA_VISIBLE_DEVICES"')
    info = c.wait_job(job)
    assert info["JobState"] == "COMPLETED" and info["NodeList"] == "n[1-2]", info
    lines = sorted(c.output(job).splitlines())
    assert lines == ["n1 0 0,1,2,3,4,5,6,7", "n2 1 0,1,2,3,4,5,6,7"]
    # more GPUs than a node has: sbatch rejects the job outright
    r = c.run("sbatch", "--gres=gpu:9", "--wrap", "true")
    assert r.returncode != 0 and "Requested node configuration is not available" in r.stderr


def test_cancel_stops_the_job(slurm_cluster):
    c = slurm_cluster
    marker = f"sleep {600 + os.getpid() % 300}"
    job = c.sbatch("--gres=gpu:2", wrap=marker)
    c.wait_job(job, {"RUNNING"})
    assert _wait_procs(marker, True)  # RUNNING comes a moment before the job's processes
    c.run("scancel", str(job), check=True)
    info = c.wait_job(job)
    # SIGTERM reaches the batch shell either as a signal (0:15) or, when bash is
    # the one that catches it first, as its exit status 128+15 (143:0): both are a cancel
    assert info["JobState"] == "CANCELLED" and info["ExitCode"] in {"0:15", "143:0"}, info
    assert _wait_procs(marker, False)


def test_exit_code_of_a_failing_job(slurm_cluster):
    c = slurm_cluster
    job = c.sbatch(wrap="exit 3")
    info = c.wait_job(job)
    assert (info["JobState"], info["ExitCode"], info["Reason"]) == ("FAILED", "3:0", "NonZeroExitCode")
    (j,) = [j for j in c.squeue_json() if j["job_id"] == job]
    # squeue --json gives the raw wait status: exit code << 8
    assert (j["job_state"], j["exit_code"], j["state_reason"]) == ("FAILED", 3 << 8, "NonZeroExitCode")


def test_node_set_down(slurm_cluster):
    c = slurm_cluster
    c.run("scontrol", "update", "nodename=n1", "state=down", "reason=maint", check=True)
    assert c.node_states()["n1"] == "down"
    node = c.node("n1")
    assert node["State"].startswith("DOWN") and node["Reason"].startswith("maint")
    job = c.sbatch("--gres=gpu:8", wrap="echo $SLURMD_NODENAME")
    assert c.wait_job(job)["NodeList"] == "n2"
    r = c.run("sbatch", "-w", "n1", "--wrap", "true")  # a job pinned to the down node waits
    pinned = int(r.stdout.split()[-1])
    time.sleep(1.5)
    assert c.job(pinned)["JobState"] == "PENDING"
    c.run("scontrol", "update", "nodename=n1", "state=resume", check=True)
    assert c.wait_job(pinned)["JobState"] == "COMPLETED"


def test_topology_switches_and_features(slurm_clusters):
    c = slurm_clusters("topo", nodes=4, nodes_per_switch=2, nodes_per_domain=2)
    topo = c.run("scontrol", "show", "topology", check=True).stdout
    assert "SwitchName=s0 Level=0" in topo and "Nodes=n3,n4" in topo and "Switches=s0,s1" in topo
    assert [c.node(n)["AvailableFeatures"] for n in c.nodes] == ["domain0", "domain0", "domain1", "domain1"]
    blocker = c.sbatch("--gres=gpu:8", "-w", "n2", wrap="sleep 30")
    c.wait_job(blocker, {"RUNNING"})
    job = c.sbatch("-N2", "--gres=gpu:1", "--switches=1", wrap="true")
    assert c.wait_job(job)["NodeList"] == "n[3-4]"  # n1 is free too, but not under one switch with another
    feat = c.sbatch("--constraint=domain1", wrap="true")
    assert c.wait_job(feat)["NodeList"] in ("n3", "n4")
    c.run("scancel", str(blocker), check=True)


def test_stopping_one_cluster_leaves_the_other(slurm_clusters):
    a = slurm_clusters("prov-a", message_timeout=2)
    b = slurm_clusters("prov-b")
    marker = f"sleep {900 + os.getpid() % 300}"
    running = a.sbatch("--gres=gpu:4", wrap=marker)
    a.wait_job(running, {"RUNNING"})
    assert _wait_procs(marker, True)
    a.stop()
    assert not _procs_with(marker)  # the job's processes died with the cluster
    t = time.monotonic()
    r = a.run("sinfo")
    took = time.monotonic() - t
    assert r.returncode == 1 and CONTROLLER_DOWN in r.stderr
    assert took < 5, took  # about MessageTimeout - 1 s
    assert a.run("scontrol", "ping").returncode == 1  # answers at once
    s = a.run("sbatch", "--wrap", "true")
    assert s.returncode == 1 and "Batch job submission failed: " + CONTROLLER_DOWN in s.stderr
    job = b.sbatch("--gres=gpu:8", "-N2", wrap="true")
    assert b.wait_job(job)["JobState"] == "COMPLETED"
    a.stop()  # again: harmless
    # restarted, the provider has the job it lost as NODE_FAIL and takes new work
    a.start()
    assert a.wait_job(running, timeout=10)["JobState"] == "NODE_FAIL"
    assert a.wait_job(a.sbatch(wrap="true"))["JobState"] == "COMPLETED"


def test_controller_restart_keeps_running_jobs(slurm_cluster):
    c = slurm_cluster
    job = c.sbatch(wrap="sleep 2; echo done")
    c.wait_job(job, {"RUNNING"})
    c.stop_controller()
    assert c.status()["daemons"]["slurmctld"] is None
    time.sleep(2.5)  # the job finishes while the controller is away
    c.start()
    info = c.wait_job(job, timeout=30)
    assert info["JobState"] == "COMPLETED" and c.output(job).strip() == "done"


def test_script_cli(tmp_path):
    why = missing_slurm()
    if why:
        pytest.skip(why)
    d = tmp_path / "c"

    def cli(*args):
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "slurm-dev"), *args], check=False,
                              capture_output=True,
                              text=True, timeout=120)

    assert cli("status", str(d)).returncode == 3
    up = cli("up", str(d), "--name", "cli", "--nodes", "1", "--gpus-per-node", "2", "--gpu-type", "h100")
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout.startswith(f"export SLURM_CONF={d}/slurm.conf\n")
        st = cli("status", str(d), "--json")
        assert st.returncode == 0
        info = json.loads(st.stdout)
        assert info["name"] == "cli" and info["node_states"] == {"n1": "idle"}
        assert info["daemons"]["slurmctld"]
        assert "Gres=gpu:h100:2" in (d / "slurm.conf").read_text()
        again = cli("up", str(d), "--json")  # already running: same answer
        assert again.returncode == 0
        assert json.loads(again.stdout)["controller_port"] == info["controller_port"]
        other = cli("up", str(d), "--nodes", "3")
        assert other.returncode == 2 and "--clean" in other.stderr
    finally:
        assert cli("down", str(d)).returncode == 0
    assert cli("down", str(d)).returncode == 0
    assert cli("status", str(d)).returncode == 3
