"""Contracts as the planner prices them: the same semantics as placement (docs/placement.md) and the
simulator's accounting, over periods instead of instants.

- Reserved capacity is a *pool* of paid GPU-hours per period (GPUs × hours in force) that covers usage on the
  contract's clusters at no marginal cost; it is paid whether used or not (a fixed cost).
- Usage a pool does not cover is billed by the period's *billing source* on that cluster: the spend commitment in
  force (at its contract rate, drawing the commitment down), else an on-demand contract (list price less its
  discount), else the list price. A contract is in force in a period when the period's midpoint is in its term.
- A spend commitment owes `max(commitment, drawn)` over its term (take-or-pay); over a plan that covers only part
  of the term, the commitment is prorated by days (as the simulator does).
- An expansion option (of a reserved or a spend commitment contract) is an optional block of up to `gpus` GPUs
  from its start to the contract's end at its price: bought GPUs join the contract's pool. Capacity itself comes
  from the clusters' ramps (an option buys coverage, not new racks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from ..model.contracts import Contract, OnDemand, ReservedCapacity, SpendCommitment
from .periods import HOURS_PER_DAY, Periods, window_days


@dataclass(frozen=True)
class Pool:
    """Paid GPU-hours per period that cover usage on `clusters` (a reservation; an option's block joins it)."""

    contract: str
    kind: str
    provider: str
    clusters: tuple[int, ...]
    base_hours: np.ndarray            # [P] GPU-hours paid per period without any option
    price_per_gpu_hour: float


@dataclass(frozen=True)
class Option:
    contract: str
    pool: int
    index: int                        # position among the contract's expansions
    start: date
    gpus: int
    price_per_gpu_hour: float
    cover_hours: np.ndarray           # [P] hours each bought GPU covers in each period

    @property
    def cost_per_gpu(self) -> float:
        return self.price_per_gpu_hour * float(self.cover_hours.sum())


@dataclass(frozen=True)
class Commitment:
    contract: str
    provider: str
    start: date
    end: date
    committed_usd: float              # over the whole term
    window_usd: float                 # owed within the plan's horizon (prorated by days)
    clusters: tuple[int, ...]


@dataclass(frozen=True)
class Billing:
    rate: np.ndarray                  # [C, P] USD per GPU-hour not covered by a pool
    commit: np.ndarray                # [C, P] index of the commitment billing it, -1 if none
    on_demand: np.ndarray             # [C, P] index into `on_demand_contracts`, -1 for the bare list price
    on_demand_contracts: tuple[str, ...]
    commitments: tuple[Commitment, ...]
    pools: tuple[Pool, ...]
    options: tuple[Option, ...]

    @property
    def fixed_usd(self) -> float:
        return float(sum(p.base_hours.sum() * p.price_per_gpu_hour for p in self.pools))


def _in_force(k: Contract, mid: np.ndarray) -> np.ndarray:
    return (mid >= k.start.toordinal()) & (mid < k.end.toordinal())


def build_billing(contracts: tuple[Contract, ...] | list[Contract], cluster_names: list[str],
                  list_price: np.ndarray, periods: Periods) -> Billing:
    C, P = len(cluster_names), periods.n
    where = {n: j for j, n in enumerate(cluster_names)}
    mid, bounds = periods.midpoints(), periods.ordinals
    rate = np.repeat(np.asarray(list_price, float)[:, None], P, axis=1)
    commit = np.full((C, P), -1, dtype=np.int64)
    on_demand = np.full((C, P), -1, dtype=np.int64)
    discount = np.zeros((C, P))
    commitments: list[Commitment] = []
    pools: list[Pool] = []
    options: list[Option] = []
    od_names: list[str] = []
    for k in contracts:
        idx = tuple(where[n] for n in k.clusters if n in where)
        live = _in_force(k, mid)
        if isinstance(k, SpendCommitment):
            term_days = max(1, (k.end - k.start).days)
            inside = float(window_days(k.start, k.end, bounds).sum())
            ci = len(commitments)
            commitments.append(Commitment(k.name, k.provider, k.start, k.end, k.commitment_usd,
                                          k.commitment_usd * inside / term_days, idx))
            for j in idx:
                take = live & (commit[j] < 0)           # the first commitment in force bills the cluster
                commit[j, take] = ci
                rate[j, take] = k.rate_for(cluster_names[j])
        elif isinstance(k, OnDemand):
            oi = len(od_names)
            od_names.append(k.name)
            for j in idx:
                better = live & (k.discount >= discount[j]) & ((on_demand[j] < 0) | (k.discount > discount[j]))
                on_demand[j, better] = oi
                discount[j, better] = k.discount
        if isinstance(k, (ReservedCapacity, SpendCommitment)) and (isinstance(k, ReservedCapacity) or k.expansions):
            base = (window_days(k.start, k.end, bounds) * HOURS_PER_DAY * k.gpus
                    if isinstance(k, ReservedCapacity) else np.zeros(P))
            pi = len(pools)
            pools.append(Pool(k.name, k.kind, k.provider, idx, base, k.price_per_gpu_hour))
            for e_i, e in enumerate(k.expansions):
                cover = window_days(max(e.start, k.start), k.end, bounds) * HOURS_PER_DAY
                if cover.sum() > 0:
                    options.append(Option(k.name, pi, e_i, e.start, e.gpus, e.price_per_gpu_hour, cover))
    no_commit = commit < 0
    rate = np.where(no_commit, rate * (1.0 - discount), rate)
    on_demand = np.where(no_commit, on_demand, -1)
    return Billing(rate, commit, on_demand, tuple(od_names), tuple(commitments), tuple(pools), tuple(options))
