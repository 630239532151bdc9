"""Failover end to end: two providers, each a real Slurm cluster behind its own backend. A training gang
that writes checkpoints runs on provider A; A's Slurm is stopped mid-run; gpufleet notices, requeues the job
and it finishes on provider B from its last checkpoint, with the lost work reported."""

from __future__ import annotations

import httpx
import slurm_cluster as sc
from live_helpers import ADMIN, checkpoint_of, wait_for
from server_proc import ServerProcess

from gpufleet.cli.demo_live_plan import failover_scenario, train_command

slurm_clusters = sc.slurm_clusters

SCENARIO = failover_scenario("slurm-a", "slurm-b")

TRAIN = train_command(40, 0.1)


def test_a_gang_moves_to_the_other_provider_when_its_slurm_stops(slurm_clusters, tmp_path):
    a = slurm_clusters("prov-a", nodes=2, gpus=8)
    b = slurm_clusters("prov-b", nodes=2, gpus=8)
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    (tmp_path / "backends.yaml").write_text(
        f"slurm-a: {{kind: slurm, conf: {a.conf}, cluster: a-h100}}\n"
        f"slurm-b: {{kind: slurm, conf: {b.conf}, cluster: b-h100}}\n")
    server = ServerProcess(f"sqlite:///{tmp_path / 'g.db'}", tmp_path, scenario=tmp_path / "scenario.yaml",
                           backend="slurm-a", poll=0.3, extra=("--backends", str(tmp_path / "backends.yaml")))
    server.start()
    try:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        r = httpx.post(server.url + "/v1/jobs", headers=admin, json={"job": {
            "name": "train", "kind": "training", "team": "research", "gpus": "H100:16", "tp": 8,
            "command": TRAIN, "checkpoint_interval_s": 1}})
        assert r.status_code == 201, r.text
        jid = r.json()["id"]
        job = wait_for(lambda: (j := httpx.get(f"{server.url}/v1/jobs/{jid}", headers=admin).json())["state"]
                       == "running" and j, timeout=60, what="the gang to run on provider A")
        assert job["placements"][0]["cluster"] == "a-h100"  # the cheaper provider
        step = checkpoint_of(tmp_path, server.db_url, jid) / "step"
        wait_for(lambda: step.exists() and int(step.read_text() or 0) >= 5, timeout=60, what="progress on A")
        a.stop()  # provider A's Slurm goes away mid-run
        done = wait_for(lambda: (j := httpx.get(f"{server.url}/v1/jobs/{jid}", headers=admin).json())["state"]
                        in ("succeeded", "failed") and j, timeout=120, what="the job to end")
        assert done["state"] == "succeeded", done
        assert [p["cluster"] for p in done["placements"]] == ["a-h100", "b-h100"]
        assert done["placements"][0]["outcome"] == "lost" and done["attempt"] == 2
        assert done["lost_gpu_hours"] > 0  # the work since the last checkpoint, reported
        out = httpx.get(f"{server.url}/v1/jobs/{jid}/logs", headers=admin).text
        resumed = int(out.split("resume at ")[1].split()[0])
        assert resumed >= 5 and "on b-h100" in out and "done at 40" in out  # from its checkpoint
        events = httpx.get(server.url + "/v1/events", headers=admin).json()
        lost = [e for e in events if e["kind"] == "capacity_lost"]
        assert [e["detail"]["target"] for e in lost] == ["a-h100"] and "slurm-a" in lost[0]["message"]
    finally:
        server.stop()
