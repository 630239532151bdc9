"""Backends by name, imported lazily so that optional extras cost nothing unless used."""

from __future__ import annotations

from pathlib import Path

from .base import Backend, BackendError

KNOWN = ("local", "fake", "ray")


def make_backend(name: str, data_dir: str | Path) -> Backend:
    if name == "local":
        from .local import LocalBackend
        return LocalBackend(Path(data_dir) / "local")
    if name == "fake":
        from .fake import FakeBackend
        return FakeBackend()
    if name == "ray":
        from .ray import RayBackend
        return RayBackend()
    raise BackendError(f"unknown backend {name!r}; known: {', '.join(KNOWN)}")
