"""The Slurm backend against real slurmctld + slurmd clusters (scripts/slurm-dev): submission, states,
exit codes, cancel, multi-node gangs, node losses, a controller that is down, two clusters at once.
The pure parts (sbatch options, the batch script) are tested without Slurm; the rest skips without it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import slurm_cluster as sc

from gpufleet.backends.base import BackendError, BackendUnavailable, Launch, Loss, Status
from gpufleet.backends.slurm import (
    SlurmBackend,
    _domains_of,
    _exit_code,
    _gres_gpus,
    batch_script,
    sbatch_args,
)

# the fixtures (pytest finds them as attributes of this module)
slurm_clusters = sc.slurm_clusters
slurm_cluster = sc.slurm_cluster


def a_launch(tmp_path: Path, command: str, job_id: int = 1, attempt: int = 1, parts=((0, 2),), group: int = 2,
             cluster: str = "slurm-a", **kw) -> Launch:
    base: dict = {"job_id": job_id, "attempt": attempt, "request_id": f"job{job_id}", "name": f"job{job_id}",
                  "team": "research", "command": command, "env": {"MY_SETTING": "on it"}, "cluster": cluster,
                  "provider": "site-a", "gpu_type": "H100", "parts": tuple(parts), "group": group,
                  "domain_size": 8, "checkpoint_dir": str(tmp_path / "ckpt" / str(job_id))}
    base.update(kw)
    return Launch(**base)


def backend(c: sc.SlurmCluster, tmp_path: Path, **kw) -> SlurmBackend:
    return SlurmBackend(conf=str(c.conf), cluster=kw.pop("cluster", "slurm-a"), root=tmp_path / f"runs-{c.name}",
                        poll_timeout_s=kw.pop("poll_timeout_s", 20), **kw)


def state(b: SlurmBackend, h: dict) -> Status:
    """A handle's status; the backend leaves running work out of its answer."""
    return b.poll({7: h}).get(7, Status("running"))


def wait_state(b: SlurmBackend, h: dict, want: set[str], timeout: float = 20) -> Status:
    end = time.monotonic() + timeout
    while True:
        st = state(b, h)
        if st.state in want:
            return st
        if time.monotonic() > end:
            raise TimeoutError(f"slurm job {h['id']} still {st} after {timeout}s")
        time.sleep(0.1)


def finished(b: SlurmBackend, h: dict, timeout: float = 20) -> Status:
    return wait_state(b, h, {"succeeded", "failed", "lost"}, timeout)


# -- pure: no Slurm needed ------------------------------------------------------------------------------
def test_sbatch_args_one_node(tmp_path):
    launch = a_launch(tmp_path, "python train.py", job_id=12, attempt=3, parts=((1, 4),), group=2)
    args = sbatch_args(launch, 8, "gpu", "/x/out.log")
    assert args == ["--parsable", "--no-requeue", "--job-name=gpufleet-12-3", "--nodes=1", "--gres=gpu:4",
                    "--ntasks-per-node=2", "--partition=gpu", "--output=/x/out.log"]
    assert "--switches=1" not in sbatch_args(launch, 8, None)
    script = batch_script(launch)
    assert script.startswith("#!/bin/bash\n")
    assert "export GPUFLEET_JOB_ID=12\n" in script and "export GPUFLEET_ATTEMPT=3\n" in script
    assert "export GPUFLEET_DOMAINS=1:4\n" in script and "export GPUFLEET_TP=2\n" in script
    assert "export GPUFLEET_GPUS=4\n" in script and "export MY_SETTING='on it'\n" in script
    assert f"export GPUFLEET_CHECKPOINT_DIR={launch.checkpoint_dir}\n" in script
    assert script.rstrip().endswith("\npython train.py") and "srun" not in script


def test_sbatch_args_two_node_gang(tmp_path):
    launch = a_launch(tmp_path, "python train.py --tp 4", parts=((0, 8), (1, 8)), group=4)
    args = sbatch_args(launch, 8, None)
    assert "--nodes=2" in args and "--gres=gpu:8" in args and "--ntasks-per-node=2" in args
    assert "--switches=1" in args and not any(a.startswith("--partition") for a in args)
    script = batch_script(launch, nodes=2)
    assert "exec srun --kill-on-bad-exit=1 /bin/bash -c 'python train.py --tp 4'" in script
    # a TP group that does not divide a node's share: one task per node
    odd = a_launch(tmp_path, "x", parts=((0, 6),), group=4)
    assert "--ntasks-per-node=1" in sbatch_args(odd, 8, None) and "--gres=gpu:6" in sbatch_args(odd, 8, None)


def test_pinned_to_the_allocated_domains(tmp_path):
    one_node_domains = {0: ["n1"], 1: ["n2"], 2: ["n3"]}
    gang = a_launch(tmp_path, "x", parts=((2, 8), (0, 8)), group=8)
    args = sbatch_args(gang, 8, None, None, one_node_domains)
    assert "--nodelist=n3,n1" in args and "--nodes=2" in args and "--gres=gpu:8" in args
    assert "--switches=1" not in args  # gpufleet chose the domains; no second opinion from Slurm
    # NVL72-like domains of several nodes: whole domains by name, part of one by a feature count
    racks = {0: ["n1", "n2", "n3"], 1: ["n4", "n5", "n6"]}
    whole = a_launch(tmp_path, "x", parts=((1, 12),), group=4)
    assert "--nodelist=n4,n5,n6" in sbatch_args(whole, 4, None, None, racks)
    part = a_launch(tmp_path, "x", parts=((0, 8), (1, 8)), group=4)
    args = sbatch_args(part, 4, None, None, racks)
    assert "--constraint=[domain0*2&domain1*2]" in args and "--nodes=4" in args and "--gres=gpu:4" in args
    assert "--segment=2" in sbatch_args(part, 4, None, None, racks, segments=True)
    assert "--constraint=domain1" in sbatch_args(a_launch(tmp_path, "x", parts=((1, 4),)), 4, None, None, racks)
    # different GPUs per node in whole domains: the nodes by name, the GPUs job-wide
    uneven = a_launch(tmp_path, "x", parts=((0, 8), (1, 4)), group=4)
    args = sbatch_args(uneven, 8, None, None, one_node_domains)
    assert "--nodelist=n1,n2" in args and "--nodes=2" in args and "--gpus=12" in args
    assert not any(a.startswith(("--gres", "--switches", "--constraint")) for a in args)
    # a domain the Slurm cluster does not have, or too small for its share: a clear error
    with pytest.raises(BackendError, match="no node in NVLink domain 7"):
        sbatch_args(a_launch(tmp_path, "x", parts=((7, 8),)), 8, None, None, one_node_domains)
    with pytest.raises(BackendError, match="not the 16 GPUs"):
        sbatch_args(a_launch(tmp_path, "x", parts=((0, 16),)), 8, None, None, one_node_domains)


def pinning(args: list[str]) -> list[str]:
    return [a for a in args if a.startswith(("--nodes=", "--nodelist", "--constraint", "--switches", "--gres",
                                             "--gpus", "--ntasks-per-node", "--segment"))]


def test_parts_without_gpus_are_left_out(tmp_path, caplog):
    one_node_domains = {0: ["n1"], 1: ["n2"]}
    launch = a_launch(tmp_path, "x", parts=((0, 0), (1, 8)), group=8)
    assert pinning(sbatch_args(launch, 8, None, None, one_node_domains)) == [
        "--nodes=1", "--gres=gpu:8", "--ntasks-per-node=1", "--nodelist=n2"]
    # no GPUs at all: one node, unpinned, and never --gres=gpu:0 (pinned or not)
    caplog.set_level(logging.WARNING, logger="gpufleet.backends")
    for parts in (((0, 0),), ((0, 0), (1, 0)), ()):
        none = a_launch(tmp_path, "x", parts=parts, group=2)
        for domains in (one_node_domains, None):
            assert pinning(sbatch_args(none, 8, None, None, domains)) == ["--nodes=1", "--ntasks-per-node=1"]
    assert not caplog.records  # nothing was asked for, so nothing fell back


def test_parts_on_the_same_domain_are_merged(tmp_path):
    one_node_domains = {0: ["n1"], 1: ["n2"]}
    twice = a_launch(tmp_path, "x", parts=((0, 8), (0, 8)), group=8)
    # 16 GPUs on a one-node domain of 8 does not fit: said, not a --nodelist=n1,n1
    with pytest.raises(BackendError, match="domain 0 has 1 node.*not the 16 GPUs"):
        sbatch_args(twice, 8, None, None, one_node_domains)
    halves = a_launch(tmp_path, "x", parts=((0, 4), (1, 8), (0, 4)), group=4)
    assert pinning(sbatch_args(halves, 8, None, None, one_node_domains)) == [
        "--nodes=2", "--gres=gpu:8", "--ntasks-per-node=2", "--nodelist=n1,n2"]
    racks = {0: ["n1", "n2"], 1: ["n3", "n4"]}
    split = a_launch(tmp_path, "x", parts=((0, 4), (0, 4), (1, 4)), group=4)
    assert pinning(sbatch_args(split, 4, None, None, racks)) == [
        "--nodes=3", "--gres=gpu:4", "--ntasks-per-node=1", "--constraint=[domain0*2&domain1*1]"]


def test_domains_from_node_names_never_merge(tmp_path, caplog):
    def node(name, features=""):
        return {"name": name, "features": features, "active_features": features, "partitions": ["gpu"]}

    # a1 and b1 both end in 1 (index 0); c3 -> 2 collides with feature domain2; n5 -> 4 is alone
    nodes = [node("a1"), node("b1"), node("x9", "domain2"), node("c3"), node("n5"), node("y", "domain7")]
    domains, named, ambiguous = _domains_of(nodes)
    assert domains == {0: ["a1", "b1"], 2: ["c3", "x9"], 4: ["n5"], 7: ["y"]}
    assert named == {0, 4} and ambiguous == {0, 2}
    caplog.set_level(logging.WARNING, logger="gpufleet.backends")
    # an ambiguous domain is not pinned at all (no --constraint=domain0 naming a feature nobody has)
    for parts in (((0, 8),), ((2, 8),)):
        args = sbatch_args(a_launch(tmp_path, "x", parts=parts, group=8), 8, None, None, domains, False, named,
                           ambiguous)
        assert not any(a.startswith(("--nodelist", "--constraint")) for a in args), args
    assert len(caplog.records) == 2 and all("not pinned" in r.getMessage() for r in caplog.records)
    # a name-derived domain is named by --nodelist only
    caplog.clear()
    args = sbatch_args(a_launch(tmp_path, "x", parts=((4, 8),), group=8), 8, None, None, domains, False, named,
                       ambiguous)
    assert "--nodelist=n5" in args and not any(a.startswith("--constraint") for a in args)
    # a share of a feature domain together with a name-only domain: one job cannot say both
    racks = {0: ["n1", "n2"], 5: ["z6"]}
    args = sbatch_args(a_launch(tmp_path, "x", parts=((0, 4), (5, 4)), group=4), 4, None, None, racks, False,
                       {5}, set())
    assert not any(a.startswith(("--nodelist", "--constraint")) for a in args) and "--switches=1" in args
    assert len(caplog.records) == 1 and "known only by node name" in caplog.records[0].getMessage()


def test_mixed_gpus_per_node(tmp_path, caplog):
    one_node_domains = {0: ["n1"], 1: ["n2"], 2: ["n3"]}
    caplog.set_level(logging.WARNING, logger="gpufleet.backends")
    # 8 + 8 + 4 (in Slurm's node order) with TP 4 would be 2, 2 and 1 tasks: one task per node
    launch = a_launch(tmp_path, "x", parts=((2, 4), (0, 8), (1, 8)), group=4)
    assert pinning(sbatch_args(launch, 8, None, None, one_node_domains)) == [
        "--nodes=3", "--gpus=20", "--ntasks-per-node=1", "--nodelist=n1,n2,n3"]
    # TP 8 on 8 + 4: one task on each node
    assert "--ntasks-per-node=1" in sbatch_args(a_launch(tmp_path, "x", parts=((0, 8), (1, 4)), group=8), 8,
                                                None, None, one_node_domains)
    # TP 2 on 6 + 4 would be 3 and 2 tasks: one task per node
    assert "--ntasks-per-node=1" in sbatch_args(a_launch(tmp_path, "x", parts=((0, 6), (1, 4)), group=2), 8,
                                                None, None, one_node_domains)
    assert not caplog.records
    # the larger share on a later node: Slurm would fill n1 first, so it is not pinned (and said)
    later = a_launch(tmp_path, "x", parts=((0, 4), (1, 8)), group=4)
    args = sbatch_args(later, 8, None, None, one_node_domains)
    assert not any(a.startswith(("--nodelist", "--constraint", "--gpus=")) for a in args)
    assert "--switches=1" in args and "--nodes=2" in args and "--gres=gpu:6" in args
    # mixed and a share of a multi-node domain: not pinned either
    racks = {0: ["n1", "n2"], 1: ["n3"]}
    args = sbatch_args(a_launch(tmp_path, "x", parts=((0, 4), (1, 2)), group=2), 4, None, None, racks)
    assert "--switches=1" in args and not any(a.startswith(("--nodelist", "--constraint")) for a in args)
    # whole multi-node domains with different GPUs per node: 4 per node on n1,n2 then 2 on n3
    args = sbatch_args(a_launch(tmp_path, "x", parts=((0, 8), (1, 2)), group=2), 4, None, None, racks)
    assert pinning(args) == ["--nodes=3", "--gpus=10", "--ntasks-per-node=1", "--nodelist=n1,n2,n3"]
    assert [r.getMessage().split(": ", 2)[2] for r in caplog.records] == [
        ("different GPUs per node, and a node later in Slurm's order takes more (Slurm fills --gpus in node "
         "order); Slurm picks the nodes"),
        "different GPUs per node in different domains, and not whole domains; Slurm picks the nodes"]


def test_helpers():
    assert _exit_code(768) == 3 and _exit_code(0) == 0 and _exit_code(None) is None and _exit_code(9) == 137
    assert _exit_code({"return_code": 5}) == 5
    assert _gres_gpus("gpu:8") == 8 and _gres_gpus("gpu:h100:4(S:0-1)") == 4 and _gres_gpus("") == 0


def test_missing_binary_is_a_backend_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    b = SlurmBackend(cluster="x", gpus_per_node=8, root=tmp_path)
    with pytest.raises(BackendError, match="apt-get install slurm-client") as e:
        b.start(a_launch(tmp_path, "true"))
    assert not isinstance(e.value, BackendUnavailable)


# -- against real clusters ------------------------------------------------------------------------------
def test_job_runs_then_succeeds(slurm_cluster, tmp_path):
    c = slurm_cluster
    b = backend(c, tmp_path)
    go = tmp_path / "ckpt" / "1" / "go"
    cmd = (f"echo CVD=$CUDA_VISIBLE_DEVICES; env | grep ^GPUFLEET_ | sort; echo MY=$MY_SETTING; "
           f"while [ ! -e {go} ]; do sleep 0.1; done; echo done")
    h = b.start(a_launch(tmp_path, cmd, parts=((0, 2),)))
    assert set(h) >= {"id", "cluster", "conf", "dir", "name"}
    assert h["conf"] == str(c.conf) and h["name"] == "gpufleet-1-1" and h["cluster"] == "slurm-a"
    c.wait_job(h["id"], {"RUNNING"})
    assert b.poll({7: h}) == {}  # running: left out
    go.touch()
    assert finished(b, h) == Status("succeeded", 0)
    log = b.logs(h)
    assert "CVD=0,1" in log and "MY=on it" in log and log.rstrip().endswith("done")
    for line in ("GPUFLEET_JOB_ID=1", "GPUFLEET_ATTEMPT=1", "GPUFLEET_CLUSTER=slurm-a", "GPUFLEET_PROVIDER=site-a",
                 "GPUFLEET_GPU_TYPE=H100", "GPUFLEET_GPUS=2", "GPUFLEET_TP=2", "GPUFLEET_DOMAINS=0:2",
                 f"GPUFLEET_CHECKPOINT_DIR={tmp_path / 'ckpt' / '1'}"):
        assert line in log.splitlines(), (line, log)
    assert b.logs(h, tail=1) == "done\n"
    assert c.job(h["id"])["JobName"] == "gpufleet-1-1"


def test_exit_code_and_cancel(slurm_cluster, tmp_path):
    c = slurm_cluster
    b = backend(c, tmp_path)
    bad = b.start(a_launch(tmp_path, "echo before; exit 3", job_id=2))
    sleeper = b.start(a_launch(tmp_path, "sleep 300", job_id=3))
    st = finished(b, bad)
    assert (st.state, st.exit_code) == ("failed", 3)
    c.wait_job(sleeper["id"], {"RUNNING"})
    b.cancel(sleeper)
    st = finished(b, sleeper)
    assert (st.state, st.message) == ("failed", "cancelled")
    b.cancel(sleeper)  # already ended: no error
    # one squeue call answers for all handles
    got = b.poll({1: bad, 2: sleeper})
    assert got[1].exit_code == 3 and got[2].message == "cancelled"


def test_job_slurm_forgot_is_lost(slurm_cluster, tmp_path):
    b = backend(slurm_cluster, tmp_path)
    st = state(b, {"id": 999999, "dir": str(tmp_path)})
    assert st.state == "lost" and "no longer knows" in st.message


def test_two_node_gang(slurm_cluster, tmp_path):
    c = slurm_cluster
    b = backend(c, tmp_path)
    launch = a_launch(tmp_path, "echo $SLURMD_NODENAME $CUDA_VISIBLE_DEVICES $GPUFLEET_GPUS",
                      parts=((0, 8), (1, 8)), group=8)
    h = b.start(launch)
    assert finished(b, h) == Status("succeeded", 0)
    assert c.job(h["id"])["NodeList"] == "n[1-2]"
    assert sorted(b.logs(h).splitlines()) == ["n1 0,1,2,3,4,5,6,7 16", "n2 0,1,2,3,4,5,6,7 16"]


def test_gang_runs_on_the_domains_gpufleet_chose(slurm_clusters, tmp_path):
    c = slurm_clusters("racks", nodes=4, gpus=4, nodes_per_domain=2)  # domain0: n1,n2  domain1: n3,n4
    b = backend(c, tmp_path)
    assert b.domains() == {0: ["n1", "n2"], 1: ["n3", "n4"]}
    whole = b.start(a_launch(tmp_path, "echo $SLURMD_NODENAME", job_id=1, parts=((1, 8),), group=4))
    half = b.start(a_launch(tmp_path, "echo $SLURMD_NODENAME", job_id=2, parts=((0, 4),), group=4))
    assert finished(b, whole) == Status("succeeded", 0) and finished(b, half) == Status("succeeded", 0)
    assert c.job(whole["id"])["NodeList"] == "n[3-4]" and whole["where"] == ["--nodelist=n3,n4"]
    assert c.job(half["id"])["NodeList"] in ("n1", "n2") and half["where"] == ["--constraint=domain0"]
    with pytest.raises(BackendError, match="no node in NVLink domain 5"):
        b.start(a_launch(tmp_path, "true", job_id=3, parts=((5, 4),), group=4))


def test_node_down_is_one_loss(slurm_clusters, tmp_path):
    c = slurm_clusters("prov-a", nodes=2, nodes_per_switch=1)  # n1 has feature domain0, n2 domain1
    b = backend(c, tmp_path, cluster="gpu-east")
    assert b.losses() == []
    c.run("scontrol", "update", "nodename=n2", "state=down", "reason=bad_gpu", check=True)
    (loss,) = b.losses()
    assert (loss.cluster, loss.domain) == ("gpu-east", 1) and "bad_gpu" in loss.reason
    assert b.losses() == []  # reported once
    c.run("scontrol", "update", "nodename=n1", "state=drain", "reason=maint", check=True)
    assert [(x.cluster, x.domain) for x in b.losses()] == [("gpu-east", 0)]
    c.run("scontrol", "update", "nodename=n2", "state=resume", check=True)
    assert b.losses() == []
    c.run("scontrol", "update", "nodename=n2", "state=down", "reason=again", check=True)
    assert b.losses() == [Loss("gpu-east", 1, loss.reason.replace("bad_gpu", "again"))]


def test_stopped_controller_is_unavailable(slurm_clusters, tmp_path):
    c = slurm_clusters("prov-a", message_timeout=2)
    b = backend(c, tmp_path)
    h = b.start(a_launch(tmp_path, "sleep 30"))
    c.wait_job(h["id"], {"RUNNING"})
    c.stop_controller()
    with pytest.raises(BackendUnavailable) as e:
        b.poll({1: h})
    assert "\n" not in str(e.value) and len(str(e.value)) < 400  # one line for the audit log
    with pytest.raises(BackendUnavailable):
        b.losses()
    with pytest.raises(BackendUnavailable):
        b.start(a_launch(tmp_path, "true", job_id=2))
    c.start()
    assert b.poll({1: h}) == {}  # the job survived the controller's absence
    b.cancel(h)


def test_two_clusters_at_once(slurm_clusters, tmp_path):
    a = slurm_clusters("prov-a", nodes=2)
    z = slurm_clusters("prov-b", nodes=3, gpus=4)
    ba = backend(a, tmp_path, cluster="a")
    bz = backend(z, tmp_path, cluster="b")
    assert (ba.gpus_per_node(), bz.gpus_per_node()) == (8, 4)
    cmd = "echo $SLURM_CLUSTER_NAME $SLURM_JOB_NUM_NODES $CUDA_VISIBLE_DEVICES"
    ha = ba.start(a_launch(tmp_path, cmd, job_id=1, parts=((0, 8),), group=8, cluster="a"))
    hz = bz.start(a_launch(tmp_path, cmd, job_id=1, parts=((0, 4), (1, 4)), group=4, cluster="b"))
    assert finished(ba, ha) == Status("succeeded", 0) and finished(bz, hz) == Status("succeeded", 0)
    assert ba.logs(ha).split() == ["prov-a", "1", "0,1,2,3,4,5,6,7"]
    assert sorted(bz.logs(hz).splitlines()) == ["prov-b 2 0,1,2,3"] * 2
    z.run("scontrol", "update", "nodename=n3", "state=down", "reason=x", check=True)
    assert ba.losses() == [] and [(x.cluster, x.domain) for x in bz.losses()] == [("b", 2)]


def test_mixed_gpus_per_node_land_where_gpufleet_counted_them(slurm_clusters, tmp_path, caplog):
    c = slurm_clusters("hgx", nodes=3, gpus=8)  # one HGX node per domain: n1 domain0, n2 domain1, n3 domain2
    b = backend(c, tmp_path)
    caplog.set_level(logging.WARNING, logger="gpufleet.backends")
    cmd = "echo $SLURMD_NODENAME $CUDA_VISIBLE_DEVICES $SLURM_NTASKS"
    h = b.start(a_launch(tmp_path, cmd, job_id=1, parts=((1, 4), (0, 8)), group=4))
    assert h["where"] == ["--nodelist=n1,n2"]
    assert finished(b, h) == Status("succeeded", 0)
    assert c.job(h["id"])["NodeList"] == "n[1-2]"
    # Slurm 22.05 gave n1 its 8 GPUs and n2 its 4, one task on each, as gpufleet counted them
    assert sorted(b.logs(h).splitlines()) == ["n1 0,1,2,3,4,5,6,7 2", "n2 0,1,2,3 2"]
    assert not caplog.records
    # the larger share on the later node: Slurm would fill n2 first, so Slurm picks the nodes, and it is said
    h2 = b.start(a_launch(tmp_path, cmd, job_id=2, parts=((2, 8), (1, 4)), group=4))
    assert h2["where"] == ["--switches=1"]
    assert finished(b, h2) == Status("succeeded", 0)
    assert [r.name for r in caplog.records] == ["gpufleet.backends"]
    assert "not pinned to NVLink domains 2:8,1:4" in caplog.records[0].getMessage()


def test_domains_that_changed_are_read_again(slurm_clusters, tmp_path):
    c = slurm_clusters("moving", nodes=3, gpus=4, nodes_per_domain=2)  # domain0: n1,n2  domain1: n3
    b = backend(c, tmp_path)
    assert b.domains() == {0: ["n1", "n2"], 1: ["n3"]}

    def features(node: str, feature: str) -> None:
        c.run("scontrol", "update", f"nodename={node}", f"availablefeatures={feature}",
              f"activefeatures={feature}", check=True)

    # n2 moves to domain 1: the cache says domain 1 is one node, too small for 8 GPUs; read again, pinned
    features("n2", "domain1")
    h = b.start(a_launch(tmp_path, "echo $SLURMD_NODENAME", job_id=1, parts=((1, 8),), group=4))
    assert h["where"] == ["--nodelist=n2,n3"] and b.domains() == {0: ["n1"], 1: ["n2", "n3"]}
    assert finished(b, h) == Status("succeeded", 0) and c.job(h["id"])["NodeList"] == "n[2-3]"
    # domain 1 goes away: sbatch refuses the cached --constraint=domain1; the domains are read again once,
    # and the launch fails on what the cluster has now, not on sbatch's refusal
    features("n2", "domain5")
    features("n3", "domain5")
    with pytest.raises(BackendError, match="no node in NVLink domain 1") as e:
        b.start(a_launch(tmp_path, "true", job_id=2, parts=((1, 4),), group=4))
    assert "sbatch refused" not in str(e.value)
    # losses() reads sinfo every poll and keeps the domains current without another sinfo call at start
    features("n1", "domain6")
    assert b.losses() == []
    assert b._domains == {5: ["n2", "n3"], 6: ["n1"]}
    h = b.start(a_launch(tmp_path, "echo $SLURMD_NODENAME", job_id=3, parts=((6, 4),), group=4))
    assert h["where"] == ["--nodelist=n1"]
    assert finished(b, h) == Status("succeeded", 0) and c.job(h["id"])["NodeList"] == "n1"
