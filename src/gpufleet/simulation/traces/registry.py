"""Every trace format by name: one literal dict, and `load_trace` to read a file in a named format."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from .alibaba import load_alibaba
from .azure_llm import load_azure_llm
from .base import DemandTrace, JobTrace, TraceError
from .gavel import load_gavel
from .generic_csv import load_generic_csv
from .mooncake import load_mooncake
from .philly import load_philly

FORMATS: dict[str, Callable[..., JobTrace | DemandTrace]] = {
    "philly": load_philly,
    "gavel": load_gavel,
    "alibaba": load_alibaba,
    "azure-llm": load_azure_llm,
    "mooncake": load_mooncake,
    "csv": load_generic_csv,
}
JOB_FORMATS = frozenset({"philly", "gavel", "alibaba", "csv"})      # -> JobTrace
DEMAND_FORMATS = frozenset({"azure-llm", "mooncake"})               # -> DemandTrace


def load_trace(path: str, fmt: str, **options: Any) -> JobTrace | DemandTrace:
    """Read `path` in format `fmt`; an unknown format or option is a TraceError listing what is known."""
    loader = FORMATS.get(fmt)
    if loader is None:
        raise TraceError(f"{path}: unknown trace format {fmt!r}; "
                         f"expected one of {', '.join(sorted(FORMATS))}")
    try:
        inspect.signature(loader).bind(path, **options)
    except TypeError as e:
        raise TraceError(f"{path}: bad options for format {fmt!r}: {e}") from None
    return loader(path, **options)
