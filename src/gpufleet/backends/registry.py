"""Backends by name, imported lazily so that optional extras cost nothing unless used."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .base import Backend, BackendError

SLURM_CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")


@dataclass(frozen=True)
class BackendInfo:
    name: str
    extra: str | None        # the pip extra that brings what it needs, if any
    summary: str
    check: Callable[[], str | None]  # None when usable here, else why not

    def usable(self) -> tuple[bool, str]:
        why = self.check()
        return why is None, why or ""


def _always() -> str | None:
    return None


def _ray() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "the ray package is not installed: pip install 'gpufleet[ray]'"
    return None


def _slurm() -> str | None:
    missing = [c for c in SLURM_CLIENTS if shutil.which(c) is None]
    if missing:
        return f"the Slurm client is not on PATH ({', '.join(missing)}): apt-get install slurm-client"
    return None


BACKENDS = {
    "local": BackendInfo("local", None, "subprocesses on this machine (slots as GPUs)", _always),
    "ray": BackendInfo("ray", "ray", "Ray placement groups, one bundle per tensor-parallel group", _ray),
    "slurm": BackendInfo("slurm", "slurm", "sbatch/squeue/scancel against a Slurm controller", _slurm),
    "fake": BackendInfo("fake", None, "in memory, for tests and benchmarks", _always),
}
KNOWN = tuple(BACKENDS)


def make_backend(name: str, data_dir: str | Path) -> Backend:
    info = BACKENDS.get(name)
    if info is None:
        raise BackendError(f"unknown backend {name!r}; known: {', '.join(KNOWN)}")
    ok, why = info.usable()
    if not ok:
        raise BackendError(f"backend {name} is not usable here: {why}")
    if name == "local":
        from .local import LocalBackend
        return LocalBackend(Path(data_dir) / "local")
    if name == "fake":
        from .fake import FakeBackend
        return FakeBackend()
    if name == "ray":
        from .ray import RayBackend
        return RayBackend()
    from .slurm import SlurmBackend
    return SlurmBackend(root=str(Path(data_dir) / "slurm"))
