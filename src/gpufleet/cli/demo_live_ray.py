"""`gpufleet demo --live --engine ray`: the live failover demo with provider A on a Ray cluster.

Provider A is a local multi-node Ray cluster started with ray.cluster_utils.Cluster: a head node without
GPUs (where gpufleet's Ray driver connects) and one node per NVLink domain of cluster a-h100, each with the
resources `gpufleet_gpu: 8`, `gpufleet_cluster_a-h100: 1` and `gpufleet_domain_<d>: 1`. Provider B is the
`local` backend: the job runs as processes on this machine. Mid-run, provider A's whole Ray cluster
vanishes: the head's processes (GCS first) and then every node with its workers and the gang's processes
are frozen and killed. The server, whose Ray backend runs in a child process with a deadline on each call,
counts ray-a unreachable, requeues the gang and it finishes on B from its last checkpoint.

Ray's files and sockets live in a short /tmp directory (Ray's socket paths are limited to 107 bytes) that
WORKDIR/ray-a links to; every process of the cluster names it on its command line or in its TMPDIR, which is
how cleanup (and a later run in the same work dir) finds what is left. Ray is imported only when the demo
runs, so this module can be imported without it.
"""

from __future__ import annotations

import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..devtools import procs
from ..devtools.ray_dev import LocalRay, kill_tree
from .demo_live import Demo
from .demo_live_plan import DemoFailed, failover_scenario

INSTALL_HINT = "pip install 'gpufleet[ray]'"
RAY_PROVIDERS = (("prov-a", "a-h100", "ray-a"), ("prov-b", "b-h100", "local-b"))
NAMESPACE = "gpufleet-demo"
DOMAINS = (0, 1)          # the NVLink domains of a-h100, one Ray node each
TEMP_PREFIX = "gpufleet-ray-a-"


def ray_missing() -> str | None:
    """Why Ray cannot be used here (None when it can)."""
    try:
        import ray
        import ray.cluster_utils  # noqa: F401
    except ImportError as e:
        return str(e) or type(e).__name__
    return None


def own_temp_dir(path: Path) -> bool:
    """Whether PATH is a Ray directory of this demo (a /tmp/gpufleet-ray-a-* directory)."""
    return path.parent == Path("/tmp").resolve() and path.name.startswith(TEMP_PREFIX) and path.is_dir()


def processes_of(temp: Path) -> list[int]:
    """Live processes that name TEMP on their command line or in their environment: the Ray cluster's
    processes, its workers and the jobs they run (TMPDIR)."""
    return procs.mentioning(str(temp), environ=True)


def kill_processes_of(temp: Path, rounds: int = 5) -> int:
    """Kill every process of the Ray cluster in TEMP (and what runs below them); how many were found."""
    killed: set[int] = set()
    for _ in range(rounds):
        pids = [p for p in processes_of(temp) if p not in killed]
        if not pids:
            break
        for pid in pids:
            kill_tree(pid)
        killed.update(pids)
    return len(killed)


class RayDemo(Demo):
    """The live demo with provider A on a local Ray cluster and provider B on the local backend."""

    engine = "ray"
    label = "Ray"
    providers = RAY_PROVIDERS
    scenario = failover_scenario("ray-a", "local-b")

    def __init__(self, workdir: Path, say: Any):
        super().__init__(workdir, say)
        self.ray: LocalRay | None = None
        self.domains: list[Any] = []
        self.temp: Path | None = None

    @property
    def address(self) -> str:
        return self.ray.address if self.ray is not None else ""

    # -- clusters ---------------------------------------------------------------------------------------
    def start_clusters(self) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir="/tmp")).resolve()
        self.short_dirs.append(self.temp)
        (self.workdir / "ray-a").symlink_to(self.temp)
        self.ray = LocalRay(self.temp)
        main = threading.current_thread() is threading.main_thread()
        on_term = signal.getsignal(signal.SIGTERM) if main else None
        self.say("starting provider A's Ray cluster: a head node without GPUs and one node per NVLink domain")
        try:
            self.ray.start()
            self.domains = [self.ray.domain_node("a-h100", d) for d in DOMAINS]
            self.ray.cluster.wait_for_nodes()
        except Exception as e:  # Ray raises many kinds; the demo reports it and cleans up
            raise DemoFailed(f"could not start the Ray cluster: {type(e).__name__}: {e}") from e
        finally:
            if main and on_term is not None:  # Ray's node handler would exit without the demo's cleanup
                signal.signal(signal.SIGTERM, on_term)
        nodes = ", ".join(f"{n.node_id[:8]} (domain {d})" for d, n in zip(DOMAINS, self.domains))
        self.say(f"Ray cluster [bold]prov-a[/] up: head (GCS) at {self.address}, no GPUs; nodes {nodes}, "
                 "each gpufleet_gpu: 8, gpufleet_cluster_a-h100: 1, gpufleet_domain_<d>: 1")
        self.say("provider [bold]prov-b[/]: the local backend (jobs run as processes on this machine)")

    def backends_text(self) -> str:
        return (f'ray-a: {{kind: ray, address: "{self.address}", namespace: {NAMESPACE}, pg_timeout_s: 30, '
                "call_timeout_s: 3}\n"
                "local-b: {kind: local}\n")

    def stop_provider_a(self) -> None:
        self.say("[bold red]provider A's whole Ray cluster vanishes[/]: the head (GCS and the rest) first, then "
                 "both nodes with their workers and the gang's processes")
        try:
            self.ray.vanish(self.domains)
        except (KeyError, IndexError, AttributeError, OSError) as e:
            raise DemoFailed(f"could not stop provider A's Ray cluster: {type(e).__name__}: {e}") from e

    def locates(self, provider: str) -> bool:
        return provider == "prov-a" and self.ray is not None and self.ray.cluster is not None

    def where(self, provider: str, jid: int, attempt: int, placement: dict) -> tuple[str, str] | None:
        by_domain = dict(zip(DOMAINS, self.domains))
        doms = sorted({int(part[0]) for part in placement.get("parts", [])})
        if not doms or any(d not in by_domain for d in doms):
            return None
        nodes = ", ".join(by_domain[d].node_id[:8] for d in doms)
        return nodes, (f"{provider}'s Ray runs it as one rank per TP group in a placement group on the nodes of "
                       f"domains {', '.join(map(str, doms))}: [bold]{nodes}[/]")

    def node_labels(self) -> dict[str, str]:
        return {"prov-a": "Ray nodes", "prov-b": "local processes"}

    # -- cleanup ----------------------------------------------------------------------------------------
    def stoppers(self) -> list[tuple[str, Any]]:
        return [("stopping provider A's Ray cluster", self._stop_ray)]

    def _stop_ray(self) -> str | None:
        problems = []
        if self.ray is not None:
            try:
                self.ray.shutdown()
            except Exception as e:  # noqa: BLE001 - what is left is killed below
                problems.append(f"Cluster.shutdown: {type(e).__name__}: {e}")
        if self.temp is not None:
            kill_processes_of(self.temp)
            left = processes_of(self.temp)
            if left:
                problems.append(f"processes still running: {left}")
        return "; ".join(problems) or None

    def leftover_processes(self) -> dict[str, int]:
        return {"prov-a": len(processes_of(self.temp)) if self.temp is not None else 0}

    def clusters_doc(self) -> dict[str, dict]:
        if self.temp is None:
            return {}
        return {"prov-a": {"dir": str(self.temp), "address": self.address,
                           "nodes": [n.node_id for n in self.domains]}}
