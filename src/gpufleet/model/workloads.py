"""Work placed on the fleet: training gangs, inference services, batch jobs; teams and their quotas."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Union

from pydantic import Field

from .base import GpuCount, Hours, Model, Name, NonNegGpus, Priority, Speed

WorkloadClass = Literal["training", "inference", "batch"]
WORKLOAD_CLASSES: tuple[str, ...] = ("training", "inference", "batch")


class Team(Model):
    """A team with a GPU quota; teams in one cohort may borrow each other's idle quota (Kueue-style)."""

    name: Name
    quota_gpus: NonNegGpus
    cohort: Name | None = None
    borrowing_limit_gpus: NonNegGpus | None = Field(
        None, description="most GPUs this team may borrow from its cohort; default unlimited")


class _WorkloadBase(Model):
    name: Name
    team: Name = "default"
    gpu_types: dict[Name, Speed] = Field(
        min_length=1, max_length=100,
        description="allowed GPU types with their speed relative to the reference type")
    priority: Priority = 100
    regions: list[Name] | None = Field(None, description="allowed regions; default any")
    providers: list[Name] | None = Field(None, description="allowed providers; default any")


class TrainingWorkload(_WorkloadBase):
    """One training run: a gang of `gpus` GPUs in tensor-parallel groups of `tp` inside one NVLink domain."""

    kind: Literal["training"]
    gpus: GpuCount
    tp: GpuCount = Field(1, description="tensor-parallel group size; each group sits in one NVLink domain")
    work_gpu_hours: Hours = Field(description="GPU-hours of work at speed 1.0 (the reference GPU type)")
    checkpoint_interval_s: Annotated[float, Field(gt=0, le=1e8)] = 3600.0
    preemptible: bool = False
    start: date
    deadline: date | None = None
    runs: Annotated[int, Field(ge=1, le=100_000, strict=True)] = Field(
        1, description="number of identical runs, started one after another")


class DemandPoint(Model):
    """From `date` on, the service needs these replicas per region."""

    date: date
    replicas: dict[Name, Annotated[int, Field(ge=0, le=10_000_000, strict=True)]] = Field(max_length=1000)


class InferenceWorkload(_WorkloadBase):
    """A service of replicas of `gpus_per_replica` GPUs that follows a demand series across regions."""

    kind: Literal["inference"]
    gpus_per_replica: GpuCount
    tp: GpuCount | None = Field(None, description="GPUs of a replica that must share a domain; default all")
    demand: list[DemandPoint] = Field(min_length=1, max_length=100_000)
    min_providers: Annotated[int, Field(ge=1, le=100, strict=True)] = 1
    priority: Priority = 500

    @property
    def replica_tp(self) -> int:
        return self.tp or self.gpus_per_replica


class BatchWorkload(_WorkloadBase):
    """A stream of small preemptible jobs."""

    kind: Literal["batch"]
    gpus: GpuCount = 1
    jobs_per_day: Annotated[float, Field(gt=0, le=1e7)]
    duration_s: Annotated[float, Field(gt=0, le=1e9)]
    start: date
    end: date
    priority: Priority = 10


Workload = Annotated[Union[TrainingWorkload, InferenceWorkload, BatchWorkload], Field(discriminator="kind")]


def workload_gpu_floor(w: TrainingWorkload | InferenceWorkload | BatchWorkload) -> int:
    """GPUs that must sit together in one NVLink domain for this workload."""
    if isinstance(w, TrainingWorkload):
        return w.tp
    if isinstance(w, InferenceWorkload):
        return w.replica_tp
    return w.gpus
