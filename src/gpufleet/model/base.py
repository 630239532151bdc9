"""Shared building blocks of the typed model: strict config, names and bounded numbers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Bounds keep absurd inputs (1e308 GPUs, 10**30 dollars) out with a clear message
# instead of overflowing arithmetic later.
MAX_GPUS = 10_000_000
MAX_USD = 1e13
MAX_PRICE = 10_000.0
MAX_HOURS = 1e9
MAX_PRIORITY = 1_000_000


class Model(BaseModel):
    """Base of every model object: unknown fields are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_strip_whitespace=True)


Name = Annotated[
    str,
    Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
          description="identifier: letters, digits and . _ : / -"),
]
GpuCount = Annotated[int, Field(ge=1, le=MAX_GPUS, strict=True)]
NonNegGpus = Annotated[int, Field(ge=0, le=MAX_GPUS, strict=True)]
Usd = Annotated[float, Field(gt=0, le=MAX_USD)]
PricePerGpuHour = Annotated[float, Field(ge=0, le=MAX_PRICE)]
Hours = Annotated[float, Field(gt=0, le=MAX_HOURS)]
Share = Annotated[float, Field(gt=0, le=1)]
Priority = Annotated[int, Field(ge=0, le=MAX_PRIORITY, strict=True)]
Speed = Annotated[float, Field(gt=0, le=1000)]
