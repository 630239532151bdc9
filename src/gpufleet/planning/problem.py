"""The planning problem as plain arrays: periods, capacity, demand streams, billing, policies.

Built once from a Portfolio (`build_problem`); what-ifs and baselines derive new Problems from it with
`dataclasses.replace`, and the LP builder reads nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from ..model.scenario import Portfolio
from .billing import Billing, build_billing
from .demand import KINDS, Streams, build_streams
from .periods import HOURS_PER_DAY, Periods, periods_between, step_integral

DEFAULT_UNMET_PENALTY = 100.0   # USD per reference GPU-hour of demand left unmet
ALL = frozenset(KINDS)


@dataclass(frozen=True)
class Limit:
    """A concentration cap: GPU-hours of `classes` on a provider ≤ max_share × all GPU-hours of `classes`."""

    label: str                      # training | inference | batch | all
    classes: frozenset[str]
    provider: str | None            # None: every provider
    max_share: float


@dataclass(frozen=True)
class Ramp:
    days: tuple[int, ...]           # ordinal day of each step
    gpus: tuple[float, ...]         # usable GPUs from that day on


@dataclass(frozen=True)
class Problem:
    name: str
    periods: Periods
    clusters: tuple[str, ...]
    providers: tuple[str, ...]      # sorted
    provider_of: np.ndarray         # [C] index into providers
    gpu_of: tuple[str, ...]
    list_price: np.ndarray          # [C] USD per GPU-hour
    ramps: tuple[Ramp, ...]
    capacity: np.ndarray            # [C, P] GPU-hours (average GPUs over the period × hours)
    streams: Streams
    billing: Billing
    limits: tuple[Limit, ...]
    critical: frozenset[str]
    n1_fraction: float
    unmet_penalty: float = DEFAULT_UNMET_PENALTY

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.streams.n, len(self.clusters), self.periods.n

    def provider_mask(self, provider: str) -> np.ndarray:
        return self.provider_of == self.providers.index(provider)


def ramp_capacity(ramps: tuple[Ramp, ...], periods: Periods) -> np.ndarray:
    """[C, P] GPU-hours: each cluster's ramp (a step function of the day) integrated over each period."""
    b = periods.ordinals
    return np.array([step_integral(r.days, r.gpus, b) * HOURS_PER_DAY for r in ramps]).reshape(len(ramps), -1)


def limits_of(p: Portfolio) -> tuple[Limit, ...]:
    out = []
    for lim in p.policies.concentration_limits:
        classes = ALL if lim.workload_class == "all" else frozenset([lim.workload_class])
        out.append(Limit(lim.workload_class, classes, lim.provider, lim.max_share))
    return tuple(out)


def build_problem(p: Portfolio, start: date | None = None, end: date | None = None, months_per_period: int = 1,
                  unmet_penalty: float = DEFAULT_UNMET_PENALTY) -> Problem:
    """The problem over [start, end) (default: the scenario's horizon) in periods of `months_per_period`."""
    periods = periods_between(start or p.start, end or p.end, months_per_period)
    cl = list(p.clusters.values())
    names = [c.name for c in cl]
    providers = tuple(sorted({c.provider for c in cl}))
    ramps = tuple(Ramp(tuple(d.toordinal() for d in c.ramp_dates),
                       tuple(float(n * c.usable_gpus_per_domain) for n in c.ramp_domains)) for c in cl)
    list_price = np.array([c.price_per_gpu_hour for c in cl], dtype=float)
    return Problem(
        name=p.scenario.name, periods=periods, clusters=tuple(names), providers=providers,
        provider_of=np.array([providers.index(c.provider) for c in cl], dtype=np.int64),
        gpu_of=tuple(c.gpu.name for c in cl), list_price=list_price, ramps=ramps,
        capacity=ramp_capacity(ramps, periods),
        streams=build_streams(p.workloads, cl, periods, p.end),
        billing=build_billing(p.contracts, names, list_price, periods),
        limits=limits_of(p), critical=frozenset(p.policies.critical_classes),
        n1_fraction=float(p.policies.n1_fraction), unmet_penalty=float(unmet_penalty))
