"""The `local` backend: each placement runs as a real subprocess on this machine.

A local cluster is declared in the scenario like any other (`backend: local`); its GPUs are slots.
The job sees which it was given in CUDA_VISIBLE_DEVICES (global slot numbers, domain * domain_size + i)
and in GPUFLEET_* variables. Output goes to a log file; a small shell wrapper writes the exit status to
a file, so a restarted server still learns how work that outlived it ended.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any

from .base import BackendError, Launch, Loss, Status

# `sh -c "$1"` runs the job; the exit status is written atomically beside the log.
_WRAPPER = 'sh -c "$1"; rc=$?; printf %s "$rc" > "$2.tmp" && mv "$2.tmp" "$2"; exit $rc'


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), to tell it from a
    later process that reused the pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw.rsplit(")", 1)[1].split()[19])


def _alive(pid: int, ticks: int | None) -> bool:
    now = _start_ticks(pid)
    if now is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and (ticks is None or now == ticks)


class LocalBackend:
    name = "local"

    def __init__(self, root: str | Path, name: str = "local"):
        self.name = name
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._children: dict[int, subprocess.Popen] = {}     # pid -> Popen of what this process started
        self._devices: dict[tuple[str, int], set[int]] = {}  # (cluster, domain) -> slots in use
        self._owner: dict[str, list[tuple[tuple[str, int], list[int]]]] = {}  # handle id -> slots held

    # -- slots ----------------------------------------------------------------------------------------
    def _take_slots(self, launch: Launch) -> list[int]:
        slots: list[int] = []
        held = []
        for d, n in launch.parts:
            used = self._devices.setdefault((launch.cluster, d), set())
            free = [i for i in range(launch.domain_size) if i not in used][:n]
            if len(free) < n:  # bookkeeping drifted (e.g. after a restart); share rather than refuse
                free = list(range(n))
            used.update(free)
            held.append(((launch.cluster, d), free))
            slots += [d * launch.domain_size + i for i in free]
        self._owner[f"{launch.job_id}.{launch.attempt}.{launch.request_id}"] = held
        return slots

    def _note_slots(self, hid: str, handle: dict[str, Any]) -> None:
        """Re-learn the slots of work started before a restart."""
        if hid in self._owner:
            return
        held = []
        for key, slots in handle.get("slots_by_domain", []):
            k = (handle["cluster"], int(key))
            self._devices.setdefault(k, set()).update(slots)
            held.append((k, slots))
        self._owner[hid] = held

    def _free_slots(self, hid: str) -> None:
        for k, slots in self._owner.pop(hid, []):
            self._devices.get(k, set()).difference_update(slots)

    # -- the interface --------------------------------------------------------------------------------
    def start(self, launch: Launch) -> dict[str, Any]:
        if not launch.command.strip():
            raise BackendError(f"job {launch.job_id} has no command to run")
        hid = f"{launch.job_id}.{launch.attempt}.{launch.request_id}"
        work = self.root / "runs" / launch.run_name
        work.mkdir(parents=True, exist_ok=True)
        Path(launch.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        slots = self._take_slots(launch)
        env = dict(os.environ)
        env.pop("GPUFLEET_TOKEN", None)
        env.pop("GPUFLEET_ADMIN_TOKEN", None)
        env.update(launch.env)
        env.update(launch.variables())
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, slots))
        log = work / "output.log"
        exit_file = work / "exit"
        exit_file.unlink(missing_ok=True)
        with open(log, "ab") as out:
            try:
                p = subprocess.Popen(["/bin/sh", "-c", _WRAPPER, "gpufleet-job", launch.command, str(exit_file)],
                                     cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as e:
                self._free_slots(hid)
                raise BackendError(f"could not start job {launch.job_id}: {e}") from e
        self._children[p.pid] = p
        by_domain: dict[int, list[int]] = {}
        for s in slots:
            by_domain.setdefault(s // launch.domain_size, []).append(s % launch.domain_size)
        return {"id": hid, "pid": p.pid, "ticks": _start_ticks(p.pid), "dir": str(work),
                "cluster": launch.cluster, "slots_by_domain": sorted(by_domain.items()),
                "command": shlex.split(launch.command)[0] if launch.command.strip() else ""}

    def _status(self, h: dict[str, Any]) -> Status:
        pid = int(h["pid"])
        child = self._children.get(pid)
        if child is not None:
            child.poll()  # reap, so a finished child is not a zombie
        exit_file = Path(h["dir"]) / "exit"
        ended = self._exit_status(exit_file)
        if ended is not None:
            self._children.pop(pid, None)
            return ended
        if (child is not None and child.returncode is None) or (child is None and _alive(pid, h.get("ticks"))):
            return Status("running")
        self._children.pop(pid, None)
        # It may have written its status and exited between the first look and the liveness check.
        ended = self._exit_status(exit_file)
        if ended is not None:
            return ended
        return Status("lost", message="the job's process group died without an exit status")

    @staticmethod
    def _exit_status(exit_file: Path) -> Status | None:
        try:
            raw = exit_file.read_text().strip()
        except OSError:
            return None
        code = int(raw) if raw.lstrip("-").isdigit() else 1
        return Status("succeeded" if code == 0 else "failed", code)

    def poll(self, handles: dict[int, dict[str, Any]]) -> dict[int, Status]:
        out = {}
        for key, h in handles.items():
            st = self._status(h)
            if st.state == "running":
                self._note_slots(h["id"], h)
            else:
                self._free_slots(h["id"])
                out[key] = st
        return out

    def cancel(self, handle: dict[str, Any]) -> None:
        pid = int(handle["pid"])
        if pid in self._children or _alive(pid, handle.get("ticks")):
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            child = self._children.pop(pid, None)
            if child is not None:
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(pid, signal.SIGKILL)
                    child.wait()
        self._free_slots(handle["id"])

    def logs(self, handle: dict[str, Any], tail: int | None = None) -> str:
        path = Path(handle["dir"]) / "output.log"
        try:
            data = path.read_bytes()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-tail:])
        return text

    def losses(self) -> list[Loss]:
        return []

    def close(self) -> None:
        for p in self._children.values():
            p.poll()
