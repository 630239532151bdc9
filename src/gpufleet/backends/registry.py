"""Backends by name, imported lazily so that optional extras cost nothing unless used."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

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


def _aws() -> str | None:
    if importlib.util.find_spec("boto3") is None:
        return "boto3 is not installed: pip install 'gpufleet[aws]'"
    return None


def _k8s() -> str | None:
    if importlib.util.find_spec("kubernetes") is None:
        return "the kubernetes client is not installed: pip install 'gpufleet[k8s]'"
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
    "aws": BackendInfo("aws", "aws", "EC2 instances, Capacity Blocks for ML and capacity reservations", _aws),
    "k8s": BackendInfo("k8s", "k8s", "JobSets with Kueue topology annotations (not yet tried on a live cluster)",
                       _k8s),
    "fake": BackendInfo("fake", None, "in memory, for tests and benchmarks", _always),
}
KNOWN = tuple(BACKENDS)


def make_backend(name: str, data_dir: str | Path, kind: str | None = None, **options: Any) -> Backend:
    """Backend `name` of `kind` (default: the kind named like it), with the kind's own options (a Slurm
    backend's `conf`, `cluster`, `partition`; a Ray backend's `address`)."""
    kind = kind or name
    info = BACKENDS.get(kind)
    if info is None:
        raise BackendError(f"unknown backend {kind!r}; known: {', '.join(KNOWN)}")
    ok, why = info.usable()
    if not ok:
        raise BackendError(f"backend {name} is not usable here: {why}")
    try:
        if kind == "local":
            from .local import LocalBackend
            return LocalBackend(Path(data_dir) / name, name=name, **options)
        if kind == "fake":
            from .fake import FakeBackend
            return FakeBackend(name, **options)
        if kind == "ray":
            from .ray import RayBackend
            isolate = options.pop("isolate", True)
            if isinstance(isolate, str):
                isolate = isolate.strip().lower() not in ("false", "no", "off", "0")
            if not isolate:
                return RayBackend(name=name, **options)
            # Ray's driver ends its process when its cluster vanishes: keep it out of the server's
            import inspect

            from .isolated import IsolatedBackend
            bound = inspect.signature(RayBackend).bind(name=name, **options)  # a bad option fails here
            bound.apply_defaults()
            t = bound.arguments
            return IsolatedBackend(name, "gpufleet.backends.ray", "RayBackend", {"name": name, **options},
                                   call_timeout_s=float(t["call_timeout_s"]) + 15.0,
                                   start_timeout_s=float(t["pg_timeout_s"]) + float(t["start_timeout_s"]) + 30.0,
                                   cancel_timeout_s=RayBackend.cancel_budget_s(float(t["call_timeout_s"])) + 15.0)
        if kind == "k8s":
            from .k8s import KubernetesBackend
            return KubernetesBackend(name=name, **options)
        if kind == "aws":
            from .aws import AwsBackend
            return AwsBackend(name=name, **options)
        from .slurm import SlurmBackend
        return SlurmBackend(name=name, root=str(Path(data_dir) / name), **options)
    except TypeError as e:  # an option the kind does not take
        raise BackendError(f"backend {name} ({kind}): {e}") from None


def backends_from_file(path: str | Path, data_dir: str | Path) -> dict[str, Backend]:
    """Named backends from a YAML file, one entry per backend:

        slurm-a: {kind: slurm, conf: /etc/slurm-a/slurm.conf, cluster: prov-a-h100}
        ray-east: {kind: ray, address: "ray://10.0.0.5:10001"}
    """
    from ruamel.yaml import YAML, YAMLError
    try:
        doc = YAML(typ="safe").load(Path(path).read_text())
    except (OSError, YAMLError) as e:
        raise BackendError(f"{path}: cannot read backends: {e}") from None
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise BackendError(f"{path}: expected a mapping of backend name -> {{kind: ..., options...}}")
    out = {}
    for name, opts in doc.items():
        opts = dict(opts)
        out[str(name)] = make_backend(str(name), data_dir, kind=str(opts.pop("kind", name)), **opts)
    return out
