"""Failover end to end with Ray: provider A is a Ray cluster whose nodes are the NVLink domains of cluster
a-h100, provider B runs jobs as local processes. A training gang that writes checkpoints runs on A; A's
machines die mid-run (or the whole Ray cluster, head and all); gpufleet notices, requeues the job and it
finishes on B from its last checkpoint, with the lost work reported."""

from __future__ import annotations

import re
import shutil
import tempfile

import httpx
import pytest

ray = pytest.importorskip("ray")

from live_helpers import ADMIN, checkpoint_of, wait_for
from server_proc import ServerProcess

from gpufleet.cli.demo_live_plan import failover_scenario, train_command
from gpufleet.devtools.ray_dev import LocalRay, machine_dies

SCENARIO = failover_scenario("ray-a", "local-b")

TRAIN = train_command(40, 0.1)
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def ray_a():
    """Provider A's Ray on this machine: a head node without GPUs (where gpufleet's driver connects) and
    one node per NVLink domain of a-h100, each with 8 custom-resource GPUs and its cluster and domain
    labels."""
    temp = tempfile.mkdtemp(prefix="gf-rayfo-")
    local = LocalRay(temp)
    try:
        local.start()
        domains = [local.domain_node("a-h100", d) for d in (0, 1)]
        local.cluster.wait_for_nodes()
        yield local, domains
    finally:
        local.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def serve_and_train(cluster, tmp_path, namespace: str, **ray_options) -> tuple[ServerProcess, int]:
    """`gpufleet serve` with ray-a on `cluster` and local-b; a checkpointing 16-GPU gang submitted, placed
    on the cheaper provider A and past step 5 there."""
    opts = "".join(f", {k}: {v}" for k, v in ray_options.items())
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    (tmp_path / "backends.yaml").write_text(
        f'ray-a: {{kind: ray, address: "{cluster.address}", namespace: {namespace}, pg_timeout_s: 30{opts}}}\n'
        "local-b: {kind: local}\n")
    server = ServerProcess(f"sqlite:///{tmp_path / 'g.db'}", tmp_path, scenario=tmp_path / "scenario.yaml",
                           backend="ray-a", poll=0.3, extra=("--backends", str(tmp_path / "backends.yaml")))
    server.start()
    r = httpx.post(server.url + "/v1/jobs", headers=ADMIN_H, json={"job": {
        "name": "train", "kind": "training", "team": "research", "gpus": "H100:16", "tp": 8,
        "command": TRAIN, "checkpoint_interval_s": 1}})
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    job = wait_for(lambda: (j := job_doc(server, jid))["state"] == "running" and j, timeout=60,
                   what="the gang to run on provider A")
    assert job["placements"][0]["cluster"] == "a-h100"  # the cheaper provider
    step = checkpoint_of(tmp_path, server.db_url, jid) / "step"
    wait_for(lambda: step.exists() and int(step.read_text() or 0) >= 5, timeout=60, what="progress on A")
    return server, jid


def job_doc(server: ServerProcess, jid: int) -> dict:
    return httpx.get(f"{server.url}/v1/jobs/{jid}", headers=ADMIN_H).json()


def finished_on_b(server: ServerProcess, jid: int) -> None:
    """The gang ended well on provider B, from A's last checkpoint, with the lost work reported."""
    done = wait_for(lambda: (j := job_doc(server, jid))["state"] in ("succeeded", "failed") and j,
                    timeout=180, what="the job to end")
    assert done["state"] == "succeeded", done
    assert [p["cluster"] for p in done["placements"]] == ["a-h100", "b-h100"]
    assert done["placements"][0]["outcome"] == "lost" and done["attempt"] == 2
    assert done["lost_gpu_hours"] > 0  # the work since the last checkpoint, reported
    out = httpx.get(f"{server.url}/v1/jobs/{jid}/logs", headers=ADMIN_H).text
    resumed = int(out.split("resume at ")[1].split()[0])
    assert resumed >= 5 and "on b-h100" in out and "done at 40" in out  # from its checkpoint


def capacity_lost(server: ServerProcess) -> list[dict]:
    return [e for e in httpx.get(server.url + "/v1/events", headers=ADMIN_H).json() if e["kind"] == "capacity_lost"]


def test_a_gang_moves_to_the_other_provider_when_its_ray_nodes_die(ray_a, tmp_path):
    local, domains = ray_a
    server, jid = serve_and_train(local.cluster, tmp_path, "gf-failover")
    try:
        on_a = httpx.get(f"{server.url}/v1/jobs/{jid}/logs", headers=ADMIN_H).text
        assert "[rank 0] resume at 0 on a-h100" in on_a  # one rank per tensor-parallel group
        assert re.search(r"^\[rank 1\] resume at \d+ on a-h100$", on_a, re.MULTILINE), on_a
        for node in domains:  # provider A's machines go away mid-run
            machine_dies(node)
            local.cluster.remove_node(node, allow_graceful=False)  # the cluster's own bookkeeping
        finished_on_b(server, jid)
        lost = capacity_lost(server)
        assert sorted((e["detail"]["target"], e["detail"]["domain"]) for e in lost) == [("a-h100", 0),
                                                                                        ("a-h100", 1)]
        assert all(e["actor"] == "backend:ray-a" and "died" in e["message"] for e in lost)
    finally:
        server.stop()


def test_the_server_survives_its_whole_ray_cluster_vanishing_and_the_gang_moves(ray_a, tmp_path):
    """Ray's driver ends its own process a minute after its cluster's GCS is gone; the Ray backend runs in
    a child process with a deadline on every call, so the server lives on, counts A as unreachable and moves
    the work."""
    local, domains = ray_a
    server, jid = serve_and_train(local.cluster, tmp_path, "gf-gone", call_timeout_s=3)
    try:
        local.vanish(domains)  # provider A's whole Ray cluster goes: the head (GCS) first, then every machine
        finished_on_b(server, jid)
        assert server.proc.poll() is None, "the server died with its Ray cluster"
        assert httpx.get(server.url + "/health").status_code == 200
        lost = capacity_lost(server)
        assert [e["detail"]["target"] for e in lost] == ["a-h100"]
        assert "backend ray-a unreachable" in lost[0]["message"]
    finally:
        server.stop()
