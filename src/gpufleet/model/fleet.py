"""Providers, regions and clusters of NVLink domains, as written in a scenario and as resolved."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

from pydantic import Field

from .base import GpuCount, Hours, Model, Name, PricePerGpuHour
from .gpu import GpuType

ProviderKind = Literal["aws", "azure", "oci", "gcp", "coreweave", "lambda", "onprem", "custom"]

# Providers every scenario may name without declaring them.
KNOWN_PROVIDERS: dict[str, str] = {
    "aws": "Amazon Web Services",
    "azure": "Microsoft Azure",
    "oci": "Oracle Cloud Infrastructure",
    "gcp": "Google Cloud",
    "coreweave": "CoreWeave",
    "lambda": "Lambda",
}

# Public reference: Meta saw 419 unexpected interruptions in 54 days on 16,384 H100s,
# i.e. one per ~50,700 GPU-hours; a domain of n GPUs fails n times as often.
DEFAULT_GPU_MTBF_H = 54 * 24 * 16_384 / 419
DEFAULT_REPAIR_H = 24.0


class ProviderSpec(Model):
    name: Name
    kind: ProviderKind = "custom"
    display_name: str | None = None
    regions: list[Name] = Field(default_factory=list, max_length=1000)


class RampStep(Model):
    """From `date` on, the cluster has `domains` NVLink domains (a cumulative level, not an increment)."""

    date: date
    domains: Annotated[int, Field(ge=0, le=10_000_000, strict=True)]


class ReliabilitySpec(Model):
    domain_mtbf_h: Hours | None = Field(None, description="mean hours between failures of one domain")
    repair_h: Hours = DEFAULT_REPAIR_H
    cluster_mtbf_h: Hours | None = Field(None, description="mean hours between whole-cluster outages")
    cluster_repair_h: Hours = 12.0


class ClusterSpec(Model):
    """A cluster as a scenario states it; unset fields come from the GPU type or the catalog offering."""

    name: Name
    provider: Name
    region: Name
    area: Name | None = Field(None, description="wider area that inference demand may name (e.g. us-east) so "
                                                "replicas can go to any provider there; default the region")
    gpu: Name
    domain_size: GpuCount | None = Field(None, description="GPUs per NVLink domain (72 for NVL72, 8 for HGX)")
    usable_gpus_per_domain: GpuCount | None = Field(
        None, description="GPUs of a domain that can be scheduled at once (e.g. 64 of 72)")
    domains: Annotated[int, Field(ge=0, le=10_000_000, strict=True)] | None = Field(
        None, description="constant number of domains (use `ramp` for capacity over time)")
    ramp: list[RampStep] | None = Field(None, max_length=10_000)
    fabric_max_gpus: GpuCount | None = Field(
        None, description="largest gang that can span the scale-out fabric; default the whole cluster")
    price_per_gpu_hour: PricePerGpuHour | None = None
    offering: Name | None = Field(None, description="catalog offering id to take the list price from")
    reliability: ReliabilitySpec = Field(default_factory=ReliabilitySpec)
    backend: Name | None = Field(None, description="execution backend for live runs (e.g. local)")


@dataclass(frozen=True, slots=True)
class Cluster:
    """A resolved cluster: every figure known, ramp as parallel tuples for fast lookups."""

    name: str
    provider: str
    region: str
    gpu: GpuType
    domain_size: int
    usable_gpus_per_domain: int
    ramp_dates: tuple[date, ...]
    ramp_domains: tuple[int, ...]
    fabric_max_gpus: int | None
    price_per_gpu_hour: float
    domain_mtbf_h: float
    repair_h: float
    cluster_mtbf_h: float | None
    cluster_repair_h: float
    backend: str | None = None
    area: str = ""

    def __post_init__(self) -> None:
        if not self.area:
            object.__setattr__(self, "area", self.region)

    def domains_at(self, day: date) -> int:
        i = bisect.bisect_right(self.ramp_dates, day)
        return self.ramp_domains[i - 1] if i else 0

    def gpus_at(self, day: date) -> int:
        return self.domains_at(day) * self.usable_gpus_per_domain

    @property
    def max_domains(self) -> int:
        return max(self.ramp_domains, default=0)

    @property
    def max_gang_gpus(self) -> int:
        whole = self.max_domains * self.usable_gpus_per_domain
        return whole if self.fabric_max_gpus is None else min(whole, self.fabric_max_gpus)
