"""GPU types: the hardware facts placement and planning reason about."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Model, Name


class GpuType(Model):
    """One accelerator model. Figures are per GPU; TFLOPs are dense (no sparsity)."""

    name: Name
    vendor: str = "custom"
    hbm_gb: Annotated[float, Field(gt=0, le=100_000)]
    hbm_tb_s: Annotated[float, Field(gt=0, le=10_000)]
    bf16_dense_tflops: Annotated[float, Field(gt=0, le=1e7)]
    fp8_dense_tflops: Annotated[float, Field(gt=0, le=1e7)] | None = None
    fp4_dense_tflops: Annotated[float, Field(gt=0, le=1e7)] | None = None
    nvlink_domain_gpus: Annotated[int, Field(ge=1, le=100_000)]
    power_w: Annotated[float, Field(gt=0, le=100_000)] | None = None
    status: Literal["sourced", "derived", "partial", "estimate", "user"] = "user"
    source: str = ""
