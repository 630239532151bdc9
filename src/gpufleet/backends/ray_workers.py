"""What runs inside Ray workers for the `ray` backend: the gang actor, its rank actors and the records actor.

Standard library and ray only, with no import from the rest of gpufleet: the backend registers this module
to pickle by value, so a Ray cluster runs it without gpufleet installed. The server side (placement groups,
polling, losses) is in `ray.py`.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any

RANK_CPU = 0.01          # each rank's CPU share: ranks mostly wait on their subprocess
STOP_GRACE_S = 5.0       # SIGTERM to SIGKILL
_RANK_CHARS = 1 << 20    # output kept per running rank
_RECORD_BYTES = 1 << 20  # output kept per finished gang
_RECORDS_KEPT = 500      # finished gangs remembered; older outcomes read as lost
_SECRETS = ("GPUFLEET_TOKEN", "GPUFLEET_ADMIN_TOKEN")


def descendants(pid: int) -> list[int]:
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


def tail_text(lines: list[str], tail: int | None) -> str:
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
            _signal_all([self.proc.pid] + descendants(self.proc.pid), signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        _signal_all([self.proc.pid] + descendants(self.proc.pid), signal.SIGKILL)
        try:
            self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        self.reader.join(timeout=2)
        shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the launch's directory goes with its last rank
            os.rmdir(os.path.dirname(self.workdir))
        return self.output()


class Gang:
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
                outputs.append(ray.get(ref, timeout=3 * STOP_GRACE_S + 10))
            except ray.exceptions.RayError:
                outputs.append([(0.0, f"(the output of rank {i} was lost with its worker)\n")])
        logs = _cap(tail_text(_merge(outputs, len(self.ranks) > 1), None), _RECORD_BYTES)
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
            return tail_text(self.final["logs"].splitlines(keepends=True), tail)
        outputs = []
        for r in self.ranks:
            try:
                outputs.append(ray.get(r.output.remote(tail), timeout=30))
            except ray.exceptions.RayError:
                outputs.append([])
        return tail_text(_merge(outputs, len(self.ranks) > 1), tail)

    def stop(self) -> dict[str, Any] | None:
        """Cancel: the ranks' commands are killed and the gang files the work as cancelled."""
        if self.final is None:
            self.cancelled = True
            for r in self.ranks:
                r.stop.remote()
        self.done.wait(timeout=3 * STOP_GRACE_S + 30)
        return self.status()

    def __repr__(self) -> str:  # names the actor in Ray's logs and dashboard
        return f"gpufleet-gang({self.hid})"


class Records:
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
