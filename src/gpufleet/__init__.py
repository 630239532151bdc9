"""gpufleet: a control plane for GPU capacity spread across many clouds."""

from pathlib import Path as _Path

from ._stale import warn_if_stale as _warn_if_stale

__version__ = "0.1.0"

_warn_if_stale(_Path(__file__).resolve().parent)
