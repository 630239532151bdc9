"""A job file: one training run, inference service or batch job, in the spirit of SkyPilot's task YAML.

    name: pretrain-7
    kind: training
    gpus: GB200:16384        # TYPE:COUNT, or a count plus `any_of`
    any_of: {GB200: 1.0, GB300: 1.3}   # allowed types with relative speed (a list means speed 1.0)
    tp: 72
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from .base import MAX_GPUS, GpuCount, Hours, Model, Name, Priority, Speed


class JobSpec(Model):
    name: Name
    kind: Literal["training", "inference", "batch"] = "training"
    team: Name = "default"
    gpus: str | int = Field(description="`TYPE:COUNT` (e.g. GB200:4096) or a count with `any_of`; "
                                        "for inference, GPUs per replica")
    any_of: list[Name] | dict[Name, Speed] | None = Field(None, description="allowed GPU types (with speeds)")
    tp: GpuCount | None = Field(None, description="tensor-parallel group size (GPUs in one NVLink domain)")
    priority: Priority | None = None
    preemptible: bool | None = None
    work_gpu_hours: Hours | None = None
    duration_s: Annotated[float, Field(gt=0, le=1e9)] | None = None
    checkpoint_interval_s: Annotated[float, Field(gt=0, le=1e8)] = 3600.0
    regions: list[Name] | None = None
    providers: list[Name] | None = None
    replicas: dict[Name, Annotated[int, Field(ge=0, le=MAX_GPUS, strict=True)]] | None = Field(
        None, description="inference: replicas wanted per region")
    min_providers: Annotated[int, Field(ge=1, le=100, strict=True)] = 1
    command: str | None = Field(None, max_length=100_000, description="what to run (live control plane)")
    env: dict[Name, str] = Field(default_factory=dict)

    @field_validator("gpus")
    @classmethod
    def _gpus_form(cls, v: str | int) -> str | int:
        if isinstance(v, bool):
            raise ValueError("expected TYPE:COUNT or a whole number")
        if isinstance(v, int):
            if not 1 <= v <= MAX_GPUS:
                raise ValueError(f"expected 1..{MAX_GPUS} GPUs")
            return v
        typ, sep, count = v.partition(":")
        if not sep or not typ.strip() or not count.strip().isdigit():
            raise ValueError(f"expected TYPE:COUNT such as GB200:4096, found {v!r}")
        if not 1 <= int(count) <= MAX_GPUS:
            raise ValueError(f"expected 1..{MAX_GPUS} GPUs, found {count}")
        return v

    @model_validator(mode="after")
    def _complete(self) -> "JobSpec":
        # Whole-job checks name the field they are about first ("tp: ..."): the loader points there.
        if not self.gpu_types:
            raise ValueError("gpus: name a GPU type: `gpus: TYPE:COUNT` or `any_of: [...]`")
        if self.kind == "inference" and not sum((self.replicas or {}).values()):
            raise ValueError("replicas: an inference job needs `replicas` per region (at least one replica)")
        if self.kind != "inference" and self.tp is not None and self.gpu_count % self.tp:
            raise ValueError(f"tp: {self.gpu_count} GPUs are not a whole number of tensor-parallel groups of {self.tp}")
        return self

    @property
    def effective_priority(self) -> int:
        """The priority given, or the default of the kind: inference 500, training 100, batch 10."""
        if self.priority is not None:
            return self.priority
        return {"training": 100, "batch": 10}.get(self.kind, 500)

    @property
    def gpu_count(self) -> int:
        return self.gpus if isinstance(self.gpus, int) else int(self.gpus.partition(":")[2])

    @property
    def gpu_types(self) -> dict[str, float]:
        """Allowed GPU types with their relative speed."""
        out: dict[str, float] = {}
        if isinstance(self.gpus, str):
            out[self.gpus.partition(":")[0].strip()] = 1.0
        if isinstance(self.any_of, dict):
            out.update(self.any_of)
        elif self.any_of:
            out.update({t: out.get(t, 1.0) for t in self.any_of})
        return out

    @property
    def group_gpus(self) -> int:
        """GPUs that must share one NVLink domain."""
        if self.kind == "training":
            return self.tp or 1
        return self.tp or self.gpu_count
