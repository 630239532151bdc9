"""Contracts: how capacity is paid for. Money is USD; rates are per GPU-hour."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Union

from pydantic import Field

from .base import GpuCount, Model, Name, PricePerGpuHour, Usd


class ExpansionOption(Model):
    """Extra capacity the buyer may take from `start` on, at a stated price."""

    start: date
    gpus: GpuCount
    price_per_gpu_hour: PricePerGpuHour


class _ContractBase(Model):
    name: Name
    provider: Name
    clusters: list[Name] = Field(min_length=1, max_length=10_000)
    start: date
    end: date


class SpendCommitment(_ContractBase):
    """Take-or-pay: `commitment_usd` over the term, drawn down by usage at the contract rate.

    What is unused at `end` is owed anyway; usage beyond it is billed at the contract rate.
    """

    kind: Literal["spend_commitment"]
    commitment_usd: Usd
    price_per_gpu_hour: PricePerGpuHour = Field(description="contract rate for every covered cluster")
    cluster_rates: dict[Name, PricePerGpuHour] = Field(
        default_factory=dict, description="per-cluster contract rate overriding price_per_gpu_hour")
    expansions: list[ExpansionOption] = Field(default_factory=list, max_length=1000)

    def rate_for(self, cluster: str) -> float:
        return self.cluster_rates.get(cluster, self.price_per_gpu_hour)

    @property
    def term_hours(self) -> float:
        return (self.end - self.start).days * 24.0


class ReservedCapacity(_ContractBase):
    """`gpus` GPUs of the covered clusters for the term at a fixed price, paid whether used or not."""

    kind: Literal["reserved_capacity"]
    gpus: GpuCount
    price_per_gpu_hour: PricePerGpuHour
    expansions: list[ExpansionOption] = Field(default_factory=list, max_length=1000)

    def gpus_at(self, day: date) -> int:
        if not (self.start <= day < self.end):
            return 0
        return self.gpus + sum(e.gpus for e in self.expansions if e.start <= day)


class OnDemand(_ContractBase):
    """Pay per use at list price (or the stated discount off it), subject to availability."""

    kind: Literal["on_demand"]
    discount: Annotated[float, Field(ge=0, lt=1)] = 0.0


Contract = Annotated[Union[SpendCommitment, ReservedCapacity, OnDemand], Field(discriminator="kind")]
CONTRACT_KINDS = ("spend_commitment", "reserved_capacity", "on_demand")
