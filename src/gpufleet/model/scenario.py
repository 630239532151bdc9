"""The scenario file (portfolio + workloads + policies) and the resolved portfolio built from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pydantic import Field

from .base import Model, Name
from .contracts import Contract
from .fleet import Cluster, ClusterSpec, ProviderSpec
from .gpu import GpuType
from .policies import Failures, Policies
from .workloads import Team, Workload


class Scenario(Model):
    """What a user writes: the portfolio, the work, and the policies, over a horizon."""

    name: Name
    description: str = Field("", max_length=100_000)
    start: date
    end: date
    gpu_types: list[GpuType] = Field(default_factory=list, max_length=1000,
                                     description="GPU types beyond the bundled catalog (e.g. on-premises)")
    providers: list[ProviderSpec] = Field(default_factory=list, max_length=1000)
    clusters: list[ClusterSpec] = Field(min_length=1, max_length=100_000)
    contracts: list[Contract] = Field(default_factory=list, max_length=100_000)
    teams: list[Team] = Field(default_factory=list, max_length=100_000)
    workloads: list[Workload] = Field(default_factory=list, max_length=1_000_000)
    policies: Policies = Field(default_factory=Policies)
    failures: Failures = Field(default_factory=Failures)


@dataclass(frozen=True)
class Portfolio:
    """A validated scenario with every reference resolved; what placement, simulation and planning read."""

    scenario: Scenario
    gpus: dict[str, GpuType]
    providers: dict[str, ProviderSpec]
    clusters: dict[str, Cluster]
    contracts: tuple[Contract, ...]
    teams: dict[str, Team]
    workloads: tuple[Workload, ...]
    policies: Policies

    @property
    def start(self) -> date:
        return self.scenario.start

    @property
    def end(self) -> date:
        return self.scenario.end

    def clusters_of(self, provider: str) -> list[Cluster]:
        return [c for c in self.clusters.values() if c.provider == provider]

    def gpus_at(self, day: date) -> int:
        return sum(c.gpus_at(day) for c in self.clusters.values())
