"""The ray backend against a real local Ray cluster whose "GPUs" are a custom resource: gangs, environment,
exit status, cancel, logs, unsatisfiable reservations, lost work, a restarted server, a dead node."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from live_helpers import wait_for

from gpufleet.backends.base import BackendError, Launch, Loss
from gpufleet.backends.ray import RayBackend, plan_bundles
from gpufleet.devtools.ray_dev import LocalRay

GPUS = 16
HEAD = {"gpufleet_gpu": GPUS, "gpufleet_cluster_ray-a": 1}
NODE_ENV: dict[str, str] = {}  # for the raylets (and so the workers) of the nodes the tests start


@pytest.fixture(scope="module")
def cluster():
    """Ray on this machine: a head node with 16 custom-resource GPUs labelled as cluster ray-a; quick health
    checks so a removed node is declared dead in about a second. Ranks keep their scratch directories
    under the cluster's own temporary directory (TMPDIR of the nodes), removed with it."""
    temp = tempfile.mkdtemp(prefix="gf-ray-")
    local = LocalRay(temp, head_resources=HEAD)
    NODE_ENV.update(local.env)
    try:
        yield local.start().cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        local.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def backend(cluster):
    b = RayBackend(address=cluster.address, pg_timeout_s=20)
    b.poll({})  # connects this process, so the tests can look at the cluster themselves
    yield b
    b.close()


def a_launch(tmp_path: Path, command: str, job_id: int = 1, attempt: int = 1, parts=((0, 4),), group=4,
             **kw) -> Launch:
    base = {"job_id": job_id, "attempt": attempt, "request_id": f"job{job_id}/region/0", "name": f"job{job_id}",
            "team": "research", "command": command, "env": {"MY_SETTING": "on"}, "cluster": "ray-a",
            "provider": "site-a", "gpu_type": "H100", "parts": tuple(parts), "group": group, "domain_size": 8,
            "checkpoint_dir": str(tmp_path / "ckpt" / str(job_id))}
    base.update(kw)
    return Launch(**base)


def finished(b: RayBackend, h: dict, timeout: float = 30):
    return wait_for(lambda: (st := b.poll({1: h})[1]).state != "running" and st, timeout=timeout,
                    what="the gang to end")


def gpus_free() -> float:
    return ray.available_resources().get("gpufleet_gpu", 0.0)


def pg_state(name: str) -> set[str]:
    return {pg["state"] for pg in ray.util.placement_group_table().values() if pg["name"] == name}


def released(h: dict) -> bool:
    return pg_state(h["pg"]) <= {"REMOVED"} and gpus_free() == GPUS


def dead(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# -- pure planning ---------------------------------------------------------------------------------------------
def test_one_bundle_per_group_pinned_to_the_cluster_and_domains_ray_knows(tmp_path):
    launch = a_launch(tmp_path, "true", parts=((0, 8), (2, 4)), group=4, cluster="ray-b")
    known = {"CPU": 4, "gpufleet_gpu": 16, "gpufleet_cluster_ray-b": 1, "gpufleet_domain_2": 1}
    bundles, strategy, use_gpu = plan_bundles(launch, known)
    assert (strategy, use_gpu) == ("PACK", False)
    assert [b["gpufleet_gpu"] for b in bundles] == [4, 4, 4]
    assert all(b["gpufleet_cluster_ray-b"] > 0 for b in bundles)
    assert ["gpufleet_domain_2" in b for b in bundles] == [False, False, True]
    elsewhere, _, _ = plan_bundles(a_launch(tmp_path, "true", parts=((2, 4),), cluster="ray-c"), known)
    assert elsewhere == [{"CPU": 0.01, "gpufleet_gpu": 4.0}]  # domain 2 of ray-b is not domain 2 of ray-c

    solo, strategy, use_gpu = plan_bundles(a_launch(tmp_path, "true", parts=((1, 8),), group=8), {"GPU": 8})
    assert (strategy, use_gpu, solo) == ("STRICT_PACK", True, [{"CPU": 0.01, "GPU": 8.0}])

    with pytest.raises(BackendError, match="whole tensor-parallel groups"):
        plan_bundles(a_launch(tmp_path, "true", parts=((0, 6),), group=4), known)


def test_without_ray_the_module_imports_and_the_backend_says_what_to_install():
    code = ("import sys; sys.modules['ray'] = None\n"
            "from gpufleet.backends.ray import RayBackend\n"
            "from gpufleet.backends.base import BackendError\n"
            "try:\n    RayBackend()\nexcept BackendError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "pip install 'gpufleet[ray]'" in r.stdout


# -- against the cluster ---------------------------------------------------------------------------------------
def test_a_gang_of_two_groups_runs_two_ranks_with_their_environment(cluster, backend, tmp_path):
    h = backend.start(a_launch(
        tmp_path, 'echo "rank=$GPUFLEET_RANK world=$GPUFLEET_WORLD tp=$GPUFLEET_TP cuda=$CUDA_VISIBLE_DEVICES '
                  'job=$GPUFLEET_JOB_ID attempt=$GPUFLEET_ATTEMPT at=$GPUFLEET_CLUSTER/$GPUFLEET_PROVIDER '
                  'ckpt=$GPUFLEET_CHECKPOINT_DIR mine=$MY_SETTING rank0=$GPUFLEET_RANK0_HOST"',
        job_id=11, attempt=2, parts=((0, 4), (1, 4)), group=4))
    assert {"id", "pg", "actor", "cluster"} <= set(h) and h["world"] == 2
    st = finished(backend, h)
    assert (st.state, st.exit_code) == ("succeeded", 0)
    out = backend.logs(h)
    ckpt = tmp_path / "ckpt" / "11"
    for rank in (0, 1):
        assert (f"[rank {rank}] rank={rank} world=2 tp=4 cuda=0,1,2,3 job=11 attempt=2 at=ray-a/site-a "
                f"ckpt={ckpt} mine=on rank0={cluster.address.split(':')[0]}") in out
    wait_for(lambda: released(h), what="the placement group to be released")


def test_a_checkpoint_written_by_one_attempt_is_seen_by_the_next(backend, tmp_path):
    cmd = ('f="$GPUFLEET_CHECKPOINT_DIR/step"; if [ -f "$f" ]; then echo "resumed from $(cat "$f")"; '
           'else echo "fresh start"; fi; echo "$GPUFLEET_ATTEMPT" > "$f"')
    first = backend.start(a_launch(tmp_path, cmd, job_id=12, attempt=1))
    assert finished(backend, first).state == "succeeded"
    second = backend.start(a_launch(tmp_path, cmd, job_id=12, attempt=2))
    assert finished(backend, second).state == "succeeded"
    assert backend.logs(first) == "fresh start\n" and backend.logs(second) == "resumed from 1\n"


def test_a_failing_rank_fails_the_gang_with_its_status_and_stops_the_others(backend, tmp_path):
    h = backend.start(a_launch(tmp_path, 'if [ "$GPUFLEET_RANK" = 1 ]; then exit 3; fi; sleep 300',
                               job_id=13, parts=((0, 8),), group=4))
    st = finished(backend, h)
    assert (st.state, st.exit_code) == ("failed", 3) and "rank 1" in st.message
    wait_for(lambda: released(h), what="the placement group to be released")


def test_cancel_stops_the_command_and_what_it_started(backend, tmp_path):
    pid_file = tmp_path / "child.pid"
    h = backend.start(a_launch(tmp_path, f"sleep 300 & echo $! > {pid_file}; wait", job_id=14))
    wait_for(pid_file.exists, what="the child to start")
    child = int(pid_file.read_text())
    assert backend.poll({1: h})[1].state == "running"
    backend.cancel(h)
    wait_for(lambda: dead(child), what="the child to die")
    assert backend.poll({1: h})[1].state != "running"
    wait_for(lambda: released(h), what="the placement group to be released")
    backend.cancel(h)  # again, once it is gone: no error


def test_logs_follow_a_running_gang_and_outlive_it(backend, tmp_path):
    h = backend.start(a_launch(tmp_path, "echo one; echo two >&2; echo three; sleep 0.7; echo four", job_id=15))
    assert wait_for(lambda: "three" in backend.logs(h) and backend.logs(h), what="output while running") \
        .startswith("one\ntwo\nthree\n")
    assert finished(backend, h).state == "succeeded"
    assert backend.logs(h) == "one\ntwo\nthree\nfour\n"
    assert backend.logs(h, tail=2) == "three\nfour\n"


def test_a_reservation_ray_cannot_satisfy_is_refused_promptly(cluster, backend, tmp_path):
    short = RayBackend(address=cluster.address, pg_timeout_s=1)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="could not reserve"):
        short.start(a_launch(tmp_path, "true", job_id=16, parts=((0, 8), (1, 8), (2, 8)), group=8))
    assert time.monotonic() - t0 < 10
    assert pg_state("gpufleet-pg-16.1.job16/region/0") <= {"REMOVED"} and gpus_free() == GPUS


def test_a_gang_whose_actor_was_killed_is_lost_and_takes_its_processes_along(backend, tmp_path):
    pid_file = tmp_path / "child.pid"
    h = backend.start(a_launch(tmp_path, f"sleep 300 & echo $! > {pid_file}; wait", job_id=17))
    wait_for(pid_file.exists, what="the child to start")
    ray.kill(ray.get_actor(h["actor"], namespace=h["namespace"]))
    st = finished(backend, h)
    assert st.state == "lost" and "gone without an outcome" in st.message
    wait_for(lambda: dead(int(pid_file.read_text())), what="the orphaned child to die")
    wait_for(lambda: released(h), what="the placement group to be released")


def test_a_restarted_server_follows_a_gang_from_its_handle(cluster, backend, tmp_path):
    h = backend.start(a_launch(tmp_path, "sleep 1; echo done", job_id=18, parts=((0, 8),), group=4))
    backend.close()  # the driver goes away; the gang is detached
    assert not ray.is_initialized()
    again = RayBackend(address=cluster.address)
    assert again.poll({1: h})[1].state == "running"
    st = finished(again, h)
    assert (st.state, st.exit_code) == ("succeeded", 0)
    assert sorted(again.logs(h).splitlines()) == ["[rank 0] done", "[rank 1] done"]


def test_a_dead_node_is_a_lost_domain_and_its_gang_is_lost(cluster, backend, tmp_path):
    node = cluster.add_node(num_cpus=1, resources={"gpufleet_gpu": 8, "gpufleet_cluster_ray-b": 1,
                                                   "gpufleet_domain_1": 1}, env_vars=NODE_ENV)
    pid_file = tmp_path / "job.pid"
    try:
        try:
            assert backend.losses() == []
            h = backend.start(a_launch(tmp_path, f"echo $$ > {pid_file}; exec sleep 300", job_id=19,
                                       cluster="ray-b", parts=((1, 8),), group=8))
            where = ray.util.placement_group_table(ray.util.get_placement_group(h["pg"]))["bundles_to_node_id"]
            assert where[0] == node.node_id  # the cluster and domain resources pinned it to that node
            assert backend.losses() == []
            wait_for(pid_file.exists, what="the job to start")
        finally:
            cluster.remove_node(node, allow_graceful=False)
        lost = wait_for(backend.losses, what="the node's death to be noticed")
        assert lost == [Loss("ray-b", 1, lost[0].reason)] and "died" in lost[0].reason
        assert finished(backend, h).state == "lost"
    finally:
        # A raylet killed outright leaves its workers' children behind (a dead machine would not): tidy up.
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_with_ray_gpus_each_gang_sees_the_devices_ray_reserved_for_it(cluster, backend, tmp_path):
    """Ray takes a node's declared GPU count on trust, so a GPU-less machine can stand in for a GPU node."""
    node = cluster.add_node(num_cpus=1, num_gpus=8, resources={"gpufleet_cluster_ray-g": 1}, env_vars=NODE_ENV)
    try:
        assert backend.losses() == []
        cmd = 'echo "cuda=$CUDA_VISIBLE_DEVICES"; sleep 300'
        hs = [backend.start(a_launch(tmp_path, cmd, job_id=j, cluster="ray-g", parts=((0, 4),))) for j in (21, 22)]
        seen = [wait_for(lambda h=h: backend.logs(h), what="output") for h in hs]
        devices = [set(s.strip().removeprefix("cuda=").split(",")) for s in seen]
        assert [len(d) for d in devices] == [4, 4] and not devices[0] & devices[1]
        for h in hs:
            backend.cancel(h)
    finally:
        cluster.remove_node(node)
    lost = wait_for(backend.losses, what="the node's death to be noticed")
    assert lost == [Loss("ray-g", None, lost[0].reason)]  # its only node: the whole cluster


def test_no_cluster_at_the_address_is_unavailable(tmp_path):
    code = ("from gpufleet.backends.ray import RayBackend\n"
            "from gpufleet.backends.base import BackendUnavailable\n"
            "try:\n    RayBackend(address='127.0.0.1:9').poll({})\n"
            "except BackendUnavailable as e:\n    print('unavailable:', e)\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                       timeout=90, env=env)
    assert "unavailable: no Ray cluster answers at 127.0.0.1:9" in r.stdout, r.stdout + r.stderr[-2000:]
