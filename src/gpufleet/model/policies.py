"""Policies over the whole portfolio: vendor-concentration limits, default profile, outages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from .base import Hours, Model, Name, Share


class ConcentrationLimit(Model):
    """No provider (or the named one) may carry more than `max_share` of a workload class's GPUs."""

    workload_class: Literal["training", "inference", "batch", "all"] = "all"
    provider: Name | None = Field(None, description="the provider it applies to; default every provider")
    max_share: Share


def _inference_only() -> list[Literal["training", "inference", "batch"]]:
    return ["inference"]


class Policies(Model):
    concentration_limits: list[ConcentrationLimit] = Field(default_factory=list, max_length=1000)
    default_profile: Name = "cost"
    critical_classes: list[Literal["training", "inference", "batch"]] = Field(
        default_factory=_inference_only,
        description="classes that must survive the loss of any one provider (planner N-1)")
    n1_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5


class Outage(Model):
    """A scheduled outage of a provider, a cluster, or one domain (`cluster#index`)."""

    target: str = Field(min_length=1, max_length=200)
    start: datetime
    duration_h: Hours
    kind: Literal["provider", "cluster", "domain"] | None = None


class Failures(Model):
    random: bool = Field(True, description="draw domain and cluster failures from the reliability figures")
    outages: list[Outage] = Field(default_factory=list, max_length=10_000)
