"""The `ray` backend (optional extra): each placement runs as a gang on a Ray cluster.

Topology: a Ray node stands for one NVLink domain. Each tensor-parallel group of the allocation becomes
one placement-group bundle, and a bundle always lives on a single node, so every group shares one domain.
One bundle is reserved STRICT_PACK; several use PACK, which keeps groups together where they fit but may
spread them over domains as the placement engine's allocation does.

Nodes may carry custom resources that tie them to gpufleet's model: `<prefix>_cluster_<name>` (1) names
the cluster a node belongs to and `<prefix>_domain_<i>` (1) its domain index. When the Ray cluster knows
such a resource, the bundles ask for a sliver of it, so the gang runs where gpufleet placed it, and
`losses` maps a dead node back to the capacity it stood for. GPUs are Ray's `GPU` resource when the cluster
has any, else the custom resource `<prefix>_gpu` (GPU-less test clusters, or nodes that hide their GPUs).

Every launch gets a named, detached "gang" actor (it outlives the server that started it). The gang owns
one rank actor per bundle, each running the job's shell command and keeping the tail of its output. When
the ranks end, the gang stops the rest, removes the placement group, files the outcome and the output
with a detached "records" actor, and exits: a later server finds the outcome there with only the JSON
handle. A gang that vanished without filing anything (its node died, it was killed) is `lost`. Those actors
are in `ray_workers.py`; this module is the server side.

The job's checkpoint_dir is a path the Ray nodes must share with the server (one machine, or a shared
file system): a restarted attempt resumes from what an earlier one wrote there.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Mapping
from typing import Any

from . import ray_workers
from .base import BackendError, BackendUnavailable, Launch, Loss, Status
from .ray_workers import RANK_CPU, STOP_GRACE_S, Gang, Records, tail_text

EXTRA_MISSING = "the ray backend needs the ray extra: pip install 'gpufleet[ray]'"
RECORDS = "gpufleet-records"
_PIN = 0.001             # the sliver of a cluster or domain resource a bundle asks for, to land on it


def plan_bundles(launch: Launch, resources: Mapping[str, float],
                 prefix: str = "gpufleet") -> tuple[list[dict[str, float]], str, bool]:
    """The placement group for a launch: (bundles, strategy, whether GPUs are Ray's own `GPU`).

    One bundle per tensor-parallel group, in the allocation's domain order; see the module docstring for
    why that is STRICT_PACK for one group and PACK for several, and for the cluster and domain pins.
    """
    group = launch.group
    if group < 1 or any(n % group for _, n in launch.parts) or launch.gpus == 0:
        raise BackendError(f"job {launch.job_id}: {launch.gpus} GPUs in parts {list(launch.parts)} do not "
                           f"form whole tensor-parallel groups of {group}")
    use_gpu = resources.get("GPU", 0) > 0
    gpu_key = "GPU" if use_gpu else f"{prefix}_gpu"
    cluster_key = f"{prefix}_cluster_{launch.cluster}"
    bundles = []
    for d, n in launch.parts:
        domain_key = f"{prefix}_domain_{d}"
        for _ in range(n // group):
            b = {"CPU": RANK_CPU, gpu_key: float(group)}
            if cluster_key in resources:  # domain indices are per cluster: pin one only within the other
                b[cluster_key] = _PIN
                if domain_key in resources:
                    b[domain_key] = _PIN
            bundles.append(b)
    return bundles, ("STRICT_PACK" if len(bundles) == 1 else "PACK"), use_gpu


def _probe(address: str, timeout: float = 5.0) -> None:
    """Raise OSError unless something listens at a host:port address: ray.init keeps retrying an absent
    cluster for minutes, and the control loop must not stall that long."""
    if "://" in address or ":" not in address:
        return  # "auto" and Ray Client addresses: ray.init tells quickly enough
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
        pass


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


class RayBackend:
    """Gangs on a Ray cluster (see the module docstring). Connects on first use, so a server starts even
    while Ray is down; its clusters then count as lost until Ray answers.

    `address` defaults to $RAY_ADDRESS, then "auto" (the cluster this machine belongs to). `namespace` holds
    the detached actors and placement groups, so servers sharing it share their work. `pg_timeout_s` bounds
    the wait for a reservation before `start` refuses; `start_timeout_s` the wait for the ranks' commands
    to start; `call_timeout_s` each question put to a gang.
    """

    name = "ray"

    def __init__(self, address: str | None = None, namespace: str = "gpufleet", resource_prefix: str = "gpufleet",
                 *, pg_timeout_s: float = 60.0, start_timeout_s: float = 120.0, call_timeout_s: float = 30.0,
                 name: str = "ray"):
        try:
            import ray  # noqa: F401
        except ImportError as e:
            raise BackendError(EXTRA_MISSING) from e
        self.name = name
        self.address = address
        self.namespace = namespace
        self.prefix = resource_prefix
        self.pg_timeout_s = pg_timeout_s
        self.start_timeout_s = start_timeout_s
        self.call_timeout_s = call_timeout_s
        self._owns = False
        self._alive_nodes: dict[str, dict[str, Any]] | None = None  # node id -> resources, as last seen

    # -- connection -----------------------------------------------------------------------------------------
    def _ray(self) -> Any:
        import ray
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS") or "auto"
            try:
                _probe(address)
                ray.init(address=address, namespace=self.namespace, ignore_reinit_error=True, log_to_driver=False)
            except Exception as e:  # ray.init raises ConnectionError, RuntimeError, ValueError...
                raise BackendUnavailable(f"no Ray cluster answers at {address}: {_first_line(e)}") from e
            self._owns = True
        # The code that runs in workers travels with the call: the cluster need not have gpufleet installed.
        ray.cloudpickle.register_pickle_by_value(ray_workers)
        return ray

    def _unavailable(self, ray: Any) -> tuple[type[BaseException], ...]:
        """Errors that mean the cluster itself did not answer."""
        return (ConnectionError, ray.exceptions.RaySystemError, ray.exceptions.RpcError)

    @staticmethod
    def _hid(launch: Launch) -> str:
        return f"{launch.job_id}.{launch.attempt}.{launch.request_id}"

    def _actor(self, ray: Any, name: str) -> Any | None:
        try:
            return ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            return None

    def _records(self, ray: Any) -> Any:
        return ray.remote(Records).options(name=RECORDS, namespace=self.namespace, lifetime="detached",
                                            get_if_exists=True, num_cpus=0, max_restarts=-1).remote()

    def _record(self, ray: Any, hid: str) -> dict[str, Any] | None:
        rec = self._actor(ray, RECORDS)
        if rec is None:
            return None
        try:
            return ray.get(rec.get.remote(hid), timeout=self.call_timeout_s)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            return None

    def _drop_pg(self, ray: Any, name: str) -> None:
        from ray.util import get_placement_group, remove_placement_group
        with contextlib.suppress(Exception):  # no such group (any more): nothing to release
            remove_placement_group(get_placement_group(name))

    def _clear(self, ray: Any, hid: str, actor: str, pg: str) -> None:
        """Remove what an earlier start of the same placement left (a start whose handle was never stored)."""
        old = self._actor(ray, actor)
        if old is not None:
            ray.kill(old, no_restart=True)
        self._drop_pg(ray, pg)
        rec = self._actor(ray, RECORDS)
        if rec is not None:
            try:
                ray.get(rec.drop.remote(hid), timeout=self.call_timeout_s)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                pass

    # -- the interface --------------------------------------------------------------------------------------
    def start(self, launch: Launch) -> dict[str, Any]:
        if not launch.command.strip():
            raise BackendError(f"job {launch.job_id} has no command to run")
        ray = self._ray()
        hid = self._hid(launch)
        actor_name, pg_name = f"gpufleet-gang-{hid}", f"gpufleet-pg-{hid}"
        try:
            self._clear(ray, hid, actor_name, pg_name)
            bundles, strategy, use_gpu = plan_bundles(launch, ray.cluster_resources(), self.prefix)
            pg = ray.util.placement_group(bundles, strategy=strategy, name=pg_name, lifetime="detached")
            if not pg.wait(self.pg_timeout_s):
                ray.util.remove_placement_group(pg)
                raise BackendError(f"Ray could not reserve {len(bundles)} bundle(s) of {launch.group} GPUs "
                                   f"({strategy}) for job {launch.job_id} within {self.pg_timeout_s:g}s")
            try:
                gang = self._start_gang(ray, launch, hid, actor_name, pg, bundles, use_gpu)
                ray.get(gang.ready.remote(), timeout=self.start_timeout_s)
            except Exception as e:
                self._abandon(ray, actor_name, pg)
                if isinstance(e, self._unavailable(ray)):
                    raise
                raise BackendError(f"job {launch.job_id} did not start on Ray: {_first_line(e)}") from e
        except self._unavailable(ray) as e:
            raise BackendUnavailable(f"the Ray cluster stopped answering: {_first_line(e)}") from e
        return {"id": hid, "actor": actor_name, "pg": pg_name, "pg_id": pg.id.hex(), "namespace": self.namespace,
                "cluster": launch.cluster, "world": len(bundles), "tp": launch.group}

    def _start_gang(self, ray: Any, launch: Launch, hid: str, actor_name: str, pg: Any,
                    bundles: list[dict[str, float]], use_gpu: bool) -> Any:
        world = len(bundles)
        common = dict(launch.env)
        common.pop("CUDA_VISIBLE_DEVICES", None)
        common.update(launch.variables())
        common.update({"GPUFLEET_WORLD": str(world), "GPUFLEET_RANK0_HOST": self._bundle_host(ray, pg, 0)})
        scratch = re.sub(r"[^\w.-]", "_", hid)
        ranks = []
        for i, b in enumerate(bundles):
            ranks.append({
                "command": launch.command, "env": {**common, "GPUFLEET_RANK": str(i)},
                "cuda": None if use_gpu else ",".join(map(str, range(launch.group))),
                "scratch": os.path.join(scratch, f"rank{i}"), "cpu": b["CPU"],
                "gpus": b.get("GPU", 0), "resources": {k: v for k, v in b.items() if k not in ("CPU", "GPU")},
            })
        gang_actor = ray.remote(Gang).options(name=actor_name, namespace=self.namespace, lifetime="detached",
                                               num_cpus=0, max_restarts=0, max_concurrency=8)
        return gang_actor.remote(hid, pg, ranks, self._records(ray))

    @staticmethod
    def _bundle_host(ray: Any, pg: Any, index: int) -> str:
        """The address of the node holding a bundle, for ranks that rendezvous with rank 0."""
        node = ray.util.placement_group_table(pg).get("bundles_to_node_id", {}).get(index)
        for n in ray.nodes():
            if n.get("NodeID") == node:
                return str(n.get("NodeManagerAddress", ""))
        return ""

    def _abandon(self, ray: Any, actor_name: str, pg: Any) -> None:
        gang = self._actor(ray, actor_name)
        if gang is not None:
            ray.kill(gang, no_restart=True)
        with contextlib.suppress(Exception):  # already gone
            ray.util.remove_placement_group(pg)

    def poll(self, handles: dict[int, dict[str, Any]]) -> dict[int, Status]:
        ray = self._ray()
        out: dict[int, Status] = {}
        try:
            asked = {}
            for key, h in handles.items():  # ask every gang first, then collect: one round trip in all
                gang = self._actor(ray, h["actor"])
                asked[key] = gang.status.remote() if gang is not None else None
            deadline = time.monotonic() + self.call_timeout_s  # one budget for the whole poll, not per gang
            for key, ref in asked.items():
                out[key] = self._status(ray, handles[key], ref, max(0.0, deadline - time.monotonic()))
        except self._unavailable(ray) as e:
            raise BackendUnavailable(f"the Ray cluster does not answer: {_first_line(e)}") from e
        return out

    def _status(self, ray: Any, h: dict[str, Any], ref: Any, wait_s: float) -> Status:
        rec = None
        if ref is not None:
            try:
                rec = ray.get(ref, timeout=wait_s)
            except ray.exceptions.GetTimeoutError:
                return Status("running", message="its gang actor is slow to answer")
            except ray.exceptions.RayActorError:
                pass  # it may have just filed its outcome and exited
            else:
                if rec is None:
                    return Status("running")
        rec = rec or self._record(ray, h["id"])
        if rec is None:
            self._drop_pg(ray, h["pg"])
            return Status("lost", message="its gang actor is gone without an outcome (its node died, or it was "
                                          "killed)")
        return Status(rec["state"], rec.get("exit_code"), rec.get("message", ""))

    @staticmethod
    def cancel_budget_s(call_timeout_s: float) -> float:
        """The longest a cancel waits: the ranks' graceful stop, then the lookups around it."""
        return 3 * STOP_GRACE_S + 40 + call_timeout_s

    def cancel(self, handle: dict[str, Any]) -> None:
        ray = self._ray()
        try:
            gang = self._actor(ray, handle["actor"])
            if gang is not None:
                try:
                    ray.get(gang.stop.remote(), timeout=self.cancel_budget_s(0.0))
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                    pass
                try:
                    ray.kill(gang, no_restart=True)
                except ray.exceptions.RayError:
                    pass
            self._drop_pg(ray, handle["pg"])
        except self._unavailable(ray) as e:
            raise BackendUnavailable(f"the Ray cluster does not answer: {_first_line(e)}") from e

    def logs(self, handle: dict[str, Any], tail: int | None = None) -> str:
        ray = self._ray()
        try:
            gang = self._actor(ray, handle["actor"])
            if gang is not None:
                try:
                    return ray.get(gang.logs.remote(tail), timeout=self.call_timeout_s)
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                    pass
            rec = self._record(ray, handle["id"])
        except self._unavailable(ray) as e:
            raise BackendUnavailable(f"the Ray cluster does not answer: {_first_line(e)}") from e
        return tail_text(rec["logs"].splitlines(keepends=True), tail) if rec else ""

    def losses(self) -> list[Loss]:
        """Nodes alive at the previous call and dead now, mapped through their cluster and domain resources.

        A node with a domain resource is that domain of its cluster; a node with only a cluster resource
        reports the whole cluster once no node of it is left. Unlabelled nodes map to nothing gpufleet
        models. The first call only takes stock: deaths from before it are not news.
        """
        ray = self._ray()
        try:
            nodes = ray.nodes()
        except self._unavailable(ray) as e:
            raise BackendUnavailable(f"the Ray cluster does not answer: {_first_line(e)}") from e
        alive = {n["NodeID"]: n for n in nodes if n.get("Alive")}
        before, self._alive_nodes = self._alive_nodes, alive
        if before is None:
            return []
        live_clusters = {c for n in alive.values() if (c := self._label(n)[0]) is not None}
        out = []
        for node_id, n in before.items():
            if node_id in alive:
                continue
            cluster, domain = self._label(n)
            if cluster is None or (domain is None and cluster in live_clusters):
                continue
            out.append(Loss(cluster, domain, f"Ray node {node_id[:12]} ({n.get('NodeManagerAddress', '?')}) died"))
        return out

    def _label(self, node: dict[str, Any]) -> tuple[str | None, int | None]:
        cluster, domain = None, None
        cp, dp = f"{self.prefix}_cluster_", f"{self.prefix}_domain_"
        for key in node.get("Resources", {}):
            if key.startswith(cp):
                cluster = key[len(cp):]
            elif key.startswith(dp) and key[len(dp):].isdigit():
                domain = int(key[len(dp):])
        return cluster, domain

    def close(self) -> None:
        if self._owns:
            import ray
            ray.shutdown()
            self._owns = False
