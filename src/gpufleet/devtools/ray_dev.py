"""A local multi-node Ray cluster on this one machine (`ray.cluster_utils.Cluster`), for the Ray backend's
tests and `gpufleet demo --live --engine ray`, and the sudden death of its machines.

Nodes stand for NVLink domains through gpufleet's resources (`domain_node`). Health checks are quick, so a
killed node is declared dead in about a second. Ray's files and sockets live in `temp`, which must be short
(Ray's socket paths are limited to 107 bytes); the nodes' processes get TMPDIR=temp, so every process of
the cluster, down to the jobs it runs, names it. Ray is imported only when a cluster starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

from ..backends.ray_workers import descendants

FAST_HEALTH_CHECKS = {"health_check_period_ms": 300, "health_check_failure_threshold": 3,
                      "health_check_initial_delay_ms": 0}


class LocalRay:
    """`start()` a head node (with `head_resources`, if any), add nodes, `shutdown()` (safe to repeat, also
    after a failed start). Ray records a cluster's address in its default directory whatever `temp` is;
    shutdown removes that record when it points at this cluster, so "auto" never names a dead cluster."""

    def __init__(self, temp: str | Path, head_resources: dict[str, float] | None = None, head_cpus: int = 2):
        self.temp = Path(temp)
        self.env = {"TMPDIR": str(self.temp)}
        self.head_resources = dict(head_resources or {})
        self.head_cpus = head_cpus
        self.cluster: Any = None
        self.address_file: Path | None = None
        self._made_address_dir = False

    @property
    def address(self) -> str:
        return self.cluster.address if self.cluster is not None else ""

    def start(self) -> LocalRay:
        from ray._private.utils import get_ray_address_file
        from ray.cluster_utils import Cluster
        self.address_file = Path(get_ray_address_file(None))
        self._made_address_dir = not self.address_file.parent.exists()
        self.address_file.parent.mkdir(parents=True, exist_ok=True)  # Cluster needs it to exist
        self.cluster = Cluster(initialize_head=True, connect=False, head_node_args={
            "num_cpus": self.head_cpus, "resources": self.head_resources, "include_dashboard": False,
            "temp_dir": str(self.temp), "env_vars": self.env, "_system_config": FAST_HEALTH_CHECKS})
        return self

    def add_node(self, resources: dict[str, float], num_cpus: int = 1, **kw: Any) -> Any:
        return self.cluster.add_node(num_cpus=num_cpus, env_vars=self.env, resources=resources, **kw)

    def domain_node(self, cluster: str, domain: int, gpus: int = 8) -> Any:
        """A node standing for NVLink domain `domain` of gpufleet cluster `cluster`, with `gpus` GPUs as the
        custom resource the Ray backend asks for where there are no real GPUs."""
        return self.add_node({"gpufleet_gpu": gpus, f"gpufleet_cluster_{cluster}": 1,
                              f"gpufleet_domain_{domain}": 1})

    def vanish(self, nodes: list[Any]) -> None:
        """The whole cluster goes at once: every process of the head (GCS first among them), then each node
        with all it runs."""
        for infos in self.cluster.head_node.all_processes.values():
            for info in infos:
                kill_tree(info.process.pid)
        for node in nodes:
            machine_dies(node)

    def shutdown(self) -> None:
        if self.cluster is not None:
            self.cluster.shutdown()
        af = self.address_file
        if af is not None:
            with contextlib.suppress(OSError):
                if self.cluster is not None and af.exists() and af.read_text().strip() == self.cluster.address:
                    af.unlink()
            if self._made_address_dir:
                with contextlib.suppress(OSError):
                    af.parent.rmdir()
                self._made_address_dir = False


def kill_tree(pid: int) -> None:
    """PID and everything below it die at once: frozen first, so none reports the others' end."""
    procs = [pid, *descendants(pid)]
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, sig)


def machine_dies(node: Any) -> None:
    """The machine behind a Ray node dies: its raylet, workers and the job processes they started."""
    from ray._private import ray_constants
    kill_tree(node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)
