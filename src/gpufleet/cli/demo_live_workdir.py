"""The work dirs of `gpufleet demo --live`: a marker file, what a run wrote there, and stopping what an
earlier run left running. The demo only ever removes what it wrote itself."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..devtools import procs
from .common import escape
from .demo_live_plan import (
    PROVIDERS,
)


def _slurm_dev(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run slurm_dev in a child of its own session, so that a Ctrl-C on the terminal does not reach it: a
    `down` cut short could leave a cluster's daemons stopped with SIGSTOP. A Ctrl-C (or SIGTERM) in the
    demo while it runs lets it finish first. Raises TimeoutExpired (the child is then killed)."""
    cmd = [sys.executable, "-m", "gpufleet.devtools.slurm_dev", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL, start_new_session=True) as p:
        try:
            so, se = p.communicate(timeout=timeout)
        except KeyboardInterrupt:
            try:
                p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
            raise
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise
    return subprocess.CompletedProcess(cmd, p.returncode, so, se)


def _down(d: Path, timeout: float = 180) -> str | None:
    """Stop the slurm-dev cluster in D; what went wrong, or None."""
    try:
        r = _slurm_dev("down", str(d), timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"`slurm_dev down {d}` did not finish within {timeout:.0f}s"
    except OSError as e:
        return f"`slurm_dev down {d}`: {e}"
    if r.returncode != 0:
        return r.stderr.strip() or f"`slurm_dev down {d}` exited {r.returncode}"
    return None


MARKER = ".gpufleet-demo"  # in every work dir of the demo; --workdir refuses a non-empty dir without it
MARKER_TEXT = ("A work dir of `gpufleet demo --live`. A run here replaces the files a previous run wrote\n"
               "(prov-a, prov-b, checkpoints, gpufleet.db, server.log, ...) and nothing else.\n")

# what a run writes in its work dir: removed before a run and, without --keep, after it
OUTPUTS = ("prov-a", "prov-b", "slurm-a", "slurm-b", "ray-a", "local-b", "checkpoints", "gpufleet.db", "gpufleet.db-wal",
           "gpufleet.db-shm", "gpufleet.db-journal", "gpufleet.db.lock", "scenario.yaml", "backends.yaml", "server.log", "result.json")


def _stop_previous(wd: Path, say: Callable[[str], None]) -> None:
    """Stop what a previous run in WD may have left running (a killed run), whichever its engine: its
    server, its Slurm clusters, its Ray cluster."""
    for pid in _demo_servers(wd):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            say(f"stopped the previous run's gpufleet serve (pid {pid})")
    for name, _, _ in PROVIDERS:
        p = wd / name
        if p.is_symlink() or p.exists():
            problem = _down(p.resolve())
            if problem:
                say(f"[yellow]could not stop the previous run's {name}[/]: {escape(problem)}")
    ray_dir = wd / "ray-a"
    if ray_dir.is_symlink():
        from .demo_live_ray import kill_processes_of, own_temp_dir
        target = ray_dir.resolve()
        if own_temp_dir(target):
            killed = kill_processes_of(target)
            if killed:
                say(f"stopped {killed} process(es) of the previous run's Ray cluster")


def _demo_servers(wd: Path) -> list[int]:
    """Live `gpufleet serve` processes that a run of the demo in WD started (their database and data dir
    are WD's)."""
    db = f"sqlite:///{wd / 'gpufleet.db'}"
    found = []
    for pid in procs.mentioning(str(wd)):
        args = procs.argv(pid)
        if "gpufleet" in args and "serve" in args and _after(args, "--db") == db and \
                _after(args, "--data-dir") == str(wd):
            found.append(pid)
    return found


def _after(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args[:-1] else None


def workdir_problem(wd: Path) -> str | None:
    """Why the demo must not work in WD (None when it may): WD must be new, empty, or a work dir of the demo
    (holding MARKER), so that the demo never removes files it did not write."""
    if not wd.exists():
        return None if not wd.is_symlink() else f"--workdir {wd} is a broken symbolic link"
    if not wd.is_dir():
        return f"--workdir {wd} is not a directory"
    if (wd / MARKER).is_file():
        return None
    try:
        if not any(wd.iterdir()):
            return None
    except OSError as e:
        return f"--workdir {wd}: {e}"
    return (f"--workdir {wd} is not empty and is not a work dir of this demo (it has no {MARKER} file); "
            "the demo would replace its checkpoints/, server.log, ... there: give a new or empty directory, "
            "or leave out --workdir")


def _remove_outputs(wd: Path, marker: bool = False) -> None:
    """Remove what a run wrote in WD (and the short /tmp cluster directories its links point to); with
    marker, the marker file too."""
    tmp = Path("/tmp").resolve()
    for name in OUTPUTS:
        p = wd / name
        if p.is_symlink():
            target = p.resolve()
            if target.parent == tmp and target.name.startswith(f"gpufleet-{name}-") and target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            p.unlink()
        elif p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
    if marker:
        (wd / MARKER).unlink(missing_ok=True)
