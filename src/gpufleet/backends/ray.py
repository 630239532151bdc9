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
handle. A gang that vanished without filing anything (its node died, it was killed) is `lost`.

The job's checkpoint_dir is a path the Ray nodes must share with the server (one machine, or a shared
file system): a restarted attempt resumes from what an earlier one wrote there.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any

from .base import BackendError, BackendUnavailable, Launch, Loss, Status

EXTRA_MISSING = "the ray backend needs the ray extra: pip install 'gpufleet[ray]'"
RECORDS = "gpufleet-records"
_PIN = 0.001             # the sliver of a cluster or domain resource a bundle asks for, to land on it
_CPU = 0.01              # each rank's CPU share: ranks mostly wait on their subprocess
_RANK_CHARS = 1 << 20    # output kept per running rank
_RECORD_BYTES = 1 << 20  # output kept per finished gang
_RECORDS_KEPT = 500      # finished gangs remembered; older outcomes read as lost
_STOP_GRACE_S = 5.0      # SIGTERM to SIGKILL
_SECRETS = ("GPUFLEET_TOKEN", "GPUFLEET_ADMIN_TOKEN")


# == code that runs inside Ray workers: standard library and ray only, so it pickles by value ==============
def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc: the job stays in its worker's process group (so Ray's own
    clean-up of a dead worker takes it along), which rules out killpg for a cancel."""
    parent: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parent.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = parent.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _merge(outputs: list[list[tuple[float, str]]], prefix: bool) -> list[str]:
    """Lines of all ranks in the order they were written, each marked with its rank when there are several."""
    tagged = [(t, r, line) for r, lines in enumerate(outputs) for t, line in lines]
    tagged.sort(key=lambda x: (x[0], x[1]))
    return [f"[rank {r}] {line}" if prefix else line for _, r, line in tagged]


def _tail(lines: list[str], tail: int | None) -> str:
    return "".join(lines[-tail:] if tail is not None else lines)


def _cap(text: str, limit: int) -> str:
    """The end of `text` within `limit` bytes, cut at a line start."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    cut = data[-limit:]
    nl = cut.find(b"\n")
    return cut[nl + 1:].decode("utf-8", "replace") if nl >= 0 else cut.decode("utf-8", "replace")


class _Rank:
    """One tensor-parallel group: the job's shell command inside one bundle, and the tail of its output."""

    def __init__(self, command: str, env: dict[str, str], cuda: str | None, scratch: str):
        import ray
        # A scratch working directory in the node's own temporary directory, not the server's.
        workdir = os.path.join(tempfile.gettempdir(), "gpufleet-ray", scratch)
        full = {k: v for k, v in os.environ.items() if k not in _SECRETS}
        full.update(env)
        # With real GPUs, Ray chose this bundle's devices; custom-resource GPUs have no identity of their own.
        full["CUDA_VISIBLE_DEVICES"] = cuda if cuda is not None else ",".join(map(str, ray.get_gpu_ids()))
        os.makedirs(workdir, exist_ok=True)
        ckpt = env.get("GPUFLEET_CHECKPOINT_DIR")
        if ckpt:
            os.makedirs(ckpt, exist_ok=True)
        self.workdir = workdir
        self.lines: collections.deque[tuple[float, str]] = collections.deque()
        self.size = 0
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=workdir, env=full,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(lambda: self.proc.stdout.readline(65536), b""):  # type: ignore[union-attr]
            line = raw.decode("utf-8", "replace")
            with self.lock:
                self.lines.append((time.time(), line))
                self.size += len(line)
                while self.size > _RANK_CHARS and len(self.lines) > 1:
                    self.size -= len(self.lines.popleft()[1])

    def pid(self) -> int:
        return self.proc.pid

    def wait(self) -> int:
        """The exit status once the command ends (128+N for a signal, as a shell reports it)."""
        code = self.proc.wait()
        self.reader.join(timeout=2)  # a background child may hold the pipe open; do not wait for it
        return 128 - code if code < 0 else code

    def output(self, tail: int | None = None) -> list[tuple[float, str]]:
        with self.lock:
            lines = list(self.lines)
        return lines[-tail:] if tail is not None else lines

    def stop(self) -> list[tuple[float, str]]:
        """End the command and everything it started, drop the scratch directory, return the output."""
        if self.proc.poll() is None:
            _signal_all([self.proc.pid] + _descendants(self.proc.pid), signal.SIGTERM)
            try:
                self.proc.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        _signal_all([self.proc.pid] + _descendants(self.proc.pid), signal.SIGKILL)
        try:
            self.proc.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        self.reader.join(timeout=2)
        shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the launch's directory goes with its last rank
            os.rmdir(os.path.dirname(self.workdir))
        return self.output()


class _Gang:
    """The supervisor of one launch: starts the ranks, watches them, and files the outcome when they end."""

    def __init__(self, hid: str, pg: Any, ranks: list[dict[str, Any]], records: Any):
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        self.hid, self.pg, self.records = hid, pg, records
        self.final: dict[str, Any] | None = None
        self.done = threading.Event()
        self.cancelled = False
        rank_actor: Any = ray.remote(_Rank)
        self.ranks: list[Any] = [
            rank_actor.options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i),
                num_cpus=r["cpu"], num_gpus=r["gpus"], resources=r["resources"], max_restarts=0,
                max_concurrency=4,
            ).remote(r["command"], r["env"], r["cuda"], r["scratch"])
            for i, r in enumerate(ranks)
        ]
        threading.Thread(target=self._watch, daemon=True).start()

    def ready(self) -> list[int]:
        """Returns once every rank's command has started (raises if a rank could not start)."""
        import ray
        return ray.get([r.pid.remote() for r in self.ranks])

    def _watch(self) -> None:
        try:
            outcome = self._outcome()
        except Exception as e:  # noqa: BLE001 - a supervisor that dies silently would leave the work hanging
            outcome = ("lost", None, f"the gang's supervisor failed: {e!r}"[:300])
        self._finish(*outcome)

    def _outcome(self) -> tuple[str, int | None, str]:
        """Wait for the ranks: the first non-zero exit fails the gang, a vanished rank makes it lost."""
        import ray
        waits = {r.wait.remote(): i for i, r in enumerate(self.ranks)}
        pending = list(waits)
        outcome: tuple[str, int | None, str] | None = None
        while pending and outcome is None:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in sorted(done, key=lambda x: waits[x]):
                i = waits[ref]
                try:
                    code = ray.get(ref)
                except ray.exceptions.RayError as e:
                    outcome = outcome or ("lost", None, f"rank {i} vanished: {str(e).splitlines()[0][:300]}")
                    continue
                if self.cancelled:
                    outcome = ("failed", None, "cancelled")
                elif code != 0 and outcome is None:
                    outcome = ("failed", code, f"rank {i} exited with status {code}")
        if self.cancelled:
            outcome = ("failed", None, "cancelled")
        return outcome or ("succeeded", 0, "")

    def _finish(self, state: str, code: int | None, message: str) -> None:
        """Stop what still runs, release the GPUs, file the outcome, then leave."""
        import ray
        outputs: list[list[tuple[float, str]]] = []
        refs = [r.stop.remote() for r in self.ranks]
        for i, ref in enumerate(refs):
            try:
                outputs.append(ray.get(ref, timeout=3 * _STOP_GRACE_S + 10))
            except ray.exceptions.RayError:
                outputs.append([(0.0, f"(the output of rank {i} was lost with its worker)\n")])
        logs = _cap(_tail(_merge(outputs, len(self.ranks) > 1), None), _RECORD_BYTES)
        with contextlib.suppress(Exception):  # already removed: nothing else to release
            ray.util.remove_placement_group(self.pg)
        record = {"state": state, "exit_code": code, "message": message, "logs": logs}
        try:
            ray.get(self.records.put.remote(self.hid, record), timeout=30)
        except ray.exceptions.RayError:
            pass  # without a record, a later poll reports the work lost: the job resumes from its checkpoint
        self.final = record
        self.done.set()
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    def status(self) -> dict[str, Any] | None:
        return None if self.final is None else {k: self.final[k] for k in ("state", "exit_code", "message")}

    def logs(self, tail: int | None = None) -> str:
        import ray
        if self.final is not None:
            return _tail(self.final["logs"].splitlines(keepends=True), tail)
        outputs = []
        for r in self.ranks:
            try:
                outputs.append(ray.get(r.output.remote(tail), timeout=30))
            except ray.exceptions.RayError:
                outputs.append([])
        return _tail(_merge(outputs, len(self.ranks) > 1), tail)

    def stop(self) -> dict[str, Any] | None:
        """Cancel: the ranks' commands are killed and the gang files the work as cancelled."""
        if self.final is None:
            self.cancelled = True
            for r in self.ranks:
                r.stop.remote()
        self.done.wait(timeout=3 * _STOP_GRACE_S + 30)
        return self.status()

    def __repr__(self) -> str:  # names the actor in Ray's logs and dashboard
        return f"gpufleet-gang({self.hid})"


class _Records:
    """Outcomes and output of finished gangs, kept after their actors exit; bounded, oldest dropped first."""

    def __init__(self, keep: int = _RECORDS_KEPT):
        self.keep = keep
        self.items: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def put(self, hid: str, record: dict[str, Any]) -> None:
        self.items[hid] = record
        self.items.move_to_end(hid)
        while len(self.items) > self.keep:
            self.items.popitem(last=False)

    def get(self, hid: str) -> dict[str, Any] | None:
        return self.items.get(hid)

    def drop(self, hid: str) -> None:
        self.items.pop(hid, None)


# == the server side ========================================================================================
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
            b = {"CPU": _CPU, gpu_key: float(group)}
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
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
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
        return ray.remote(_Records).options(name=RECORDS, namespace=self.namespace, lifetime="detached",
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
        gang_actor = ray.remote(_Gang).options(name=actor_name, namespace=self.namespace, lifetime="detached",
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
        return 3 * _STOP_GRACE_S + 40 + call_timeout_s

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
        return _tail(rec["logs"].splitlines(keepends=True), tail) if rec else ""

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
