"""Say so when a compiled core module is older than its source: a development tree where an earlier
compiled install left `.so` files next to the sources would otherwise run old code without a word."""

from __future__ import annotations

import sys
from pathlib import Path

CORE = ("placement", "scheduling", "simulation")


def stale_modules(root: Path) -> list[str]:
    """Compiled modules under `root` (the package directory) whose `.py` source is newer."""
    out = []
    for sub in CORE:
        for so in (root / sub).glob("*.so"):
            src = so.with_name(so.name.split(".", 1)[0] + ".py")
            if src.exists() and src.stat().st_mtime > so.stat().st_mtime + 1.0:
                out.append(f"{sub}/{src.name}")
    return sorted(out)


def warn_if_stale(root: Path) -> None:
    if not (root.parent.name == "src" and (root.parent.parent / "pyproject.toml").exists()):
        return   # an installed wheel: its compiled modules and sources were built together
    stale = stale_modules(root)
    if stale:
        print(f"gpufleet: compiled modules older than their sources are loaded instead of them ({', '.join(stale)}); "
              "remove them (find src -name '*.so' -delete) or reinstall with `pip install -e .`", file=sys.stderr)
