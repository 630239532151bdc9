"""Finding this machine's processes by what they name (from /proc, Linux): what the dev clusters and the
live demo use to find and stop what they started, also after a run was killed."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """PID is a live process (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def read(pid: int, what: str) -> bytes | None:
    """/proc/PID/WHAT (cmdline, environ, ...), or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/{what}", "rb") as f:
            return f.read()
    except OSError:
        return None


def argv(pid: int) -> list[str]:
    """A process's command line as its arguments (empty when unreadable)."""
    raw = read(pid, "cmdline")
    return raw.decode(errors="replace").split("\0") if raw else []


def live_pids() -> list[int]:
    """Every live process but this one."""
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me and alive(int(p))]


def mentioning(needle: str, environ: bool = False) -> list[int]:
    """Live processes whose command line, its arguments joined by spaces (and, with `environ`, their
    environment), holds NEEDLE."""
    want = needle.encode()
    where = ("cmdline", "environ") if environ else ("cmdline",)
    return [p for p in live_pids() if any(want in (read(p, w) or b"").replace(b"\0", b" ") for w in where)]
