"""What slurm-dev knows about the machine: the Slurm binaries, the processes of a cluster (from /proc) and
free loopback ports."""
from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

DAEMONS = ("slurmctld", "slurmd", "slurmstepd")
CLIENTS = ("sinfo", "squeue", "sbatch", "scontrol", "scancel", "srun")


def die(msg: str, code: int = 1) -> None:
    print(f"slurm-dev: {msg}", file=sys.stderr)
    sys.exit(code)


# -- binaries ---------------------------------------------------------------------------------------------
def find_daemon(name: str) -> str | None:
    """The real binary of a Slurm daemon. Debian installs them as NAME-wlm behind alternatives links; the
    daemons must run under the plain name (Slurm checks its program name: under `slurmd-wlm` the GPU GRES
    is dropped with 'has 8 more configured than expected'), so we link DIR/bin/NAME to the real file."""
    cands = [os.environ.get(f"SLURM_DEV_{name.upper()}"), f"/usr/sbin/{name}-wlm", shutil.which(name),
             f"/usr/sbin/{name}"]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            real = os.path.realpath(c)
            if "emulator" in real:
                continue  # slurm-wlm-emulator is a different build mode; never use it
            return real
    return None


def missing_binaries() -> list[str]:
    out = [n for n in DAEMONS if not find_daemon(n)]
    out += [n for n in CLIENTS if not shutil.which(n)]
    return out


# -- processes --------------------------------------------------------------------------------------------
def proc_start(pid: int) -> str | None:
    """Start time of a live (non-zombie) process, else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    if rest[0] in ("Z", "X"):
        return None
    return rest[19]


def proc_ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        return int(data[data.rindex(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def alive(rec: dict | None) -> bool:
    return bool(rec) and rec["start"] is not None and proc_start(rec["pid"]) == rec["start"]


def descendants(roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in all_pids():
        pp = proc_ppid(p)
        if pp is not None:
            children.setdefault(pp, []).append(p)
    out, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def exe_base(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).replace(" (deleted)", "")
    except OSError:
        return ""


def cluster_processes(d: Path) -> set[int]:
    """Processes of DIR's cluster found from /proc (in case pids.json is stale or lost): the daemons
    started with `-f DIR/slurm.conf`, and slurmstepds whose environment names DIR/slurm.conf or whose
    working directory is under DIR (slurmd runs them from its log directory)."""
    conf = str(d / "slurm.conf")
    found = set()
    for p in all_pids():
        base = exe_base(p)
        if not base.startswith(DAEMONS):
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            with open(f"/proc/{p}/environ", "rb") as f:
                env = f.read().decode(errors="replace")
            cwd = os.readlink(f"/proc/{p}/cwd")
        except OSError:
            continue
        if conf in cmd.split("\0") or f"SLURM_CONF={conf}" in env.split("\0") or \
                (base.startswith("slurmstepd") and (cwd == str(d) or cwd.startswith(str(d) + "/"))):
            found.add(p)
    return found


def kill_wait(pids: set[int], sig: int, timeout: float) -> set[int]:
    starts = {p: proc_start(p) for p in pids}
    pids = {p for p in pids if starts[p]}
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass
    end = time.monotonic() + timeout
    while True:
        pids = {p for p in pids if proc_start(p) == starts[p]}
        if not pids or time.monotonic() >= end:
            return pids
        time.sleep(0.05)


# -- ports ------------------------------------------------------------------------------------------------
def port_free(port: int) -> bool:
    for host in ("127.0.0.1", "0.0.0.0"):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Slurm does: TIME_WAIT is no obstacle
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def pick_ports(n: int, base: int | None) -> list[int]:
    if base:
        ports = list(range(base, base + n))
        busy = [p for p in ports if not port_free(p)]
        if busy:
            die(f"ports in use: {busy}")
        return ports
    socks = []
    try:
        for _ in range(n):  # hold each until all are picked, so they differ
            sk = socket.socket()
            sk.bind(("127.0.0.1", 0))
            socks.append(sk)
        return [sk.getsockname()[1] for sk in socks]
    finally:
        for sk in socks:
            sk.close()


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
