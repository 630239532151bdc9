"""Effective marginal cost of one more GPU-hour on a cluster, under the contracts that cover it.

- reserved capacity that would otherwise idle: 0 (it is paid anyway);
- a spend commitment: 0 while the commitment is projected to be under-used by the end of its term,
  rising linearly to the contract rate over the last `BAND` of the commitment;
- otherwise the contract rate (usage beyond a commitment), or the list price less any on-demand discount.

The cheapest applicable source wins. Burn-down state (`spent_usd`) is an input; see docs/placement.md.
"""

from __future__ import annotations

from .state import ClusterState, ContractState

BAND = 0.10  # the last 10% of a commitment is where its marginal cost rises from 0 to the contract rate


def commitment_pressure(k: ContractState, now: float, extra_usd_per_h: float) -> float:
    """Projected use of a spend commitment at its end, as a fraction of it, with `extra` burn added."""
    hours_left = max(0.0, (k.end - now) / 3600.0)
    projected = k.spent_usd + (k.burn_usd_per_h + extra_usd_per_h) * hours_left
    return projected / k.commitment_usd if k.commitment_usd > 0 else float("inf")


def _contract_cost(k: ContractState, cs: ClusterState, gpus: int, now: float) -> float | None:
    if not k.in_force(now):
        return None
    if k.kind == "reserved_capacity":
        idle = k.reserved - k.used_gpus
        if idle <= 0:
            return None
        # GPUs beyond the idle reservation fall through to the next source: price them at list.
        covered = min(gpus, idle)
        return (gpus - covered) * cs.list_price / gpus
    if k.kind == "spend_commitment":
        rate = k.rate_for(cs.name)
        u = commitment_pressure(k, now, gpus * rate)
        ramp = min(1.0, max(0.0, (u - (1.0 - BAND)) / BAND))
        return rate * ramp
    return cs.list_price * (1.0 - k.discount)  # on demand


def marginal_cost(cs: ClusterState, gpus: int, now: float, shared: list | None = None) -> float:
    """USD per GPU-hour that placing `gpus` more GPUs on `cs` adds to the bill.

    `shared` (one slot per contract term of the fleet, None when not yet computed) lets one decision
    compute a spend commitment's figure once for all the clusters it covers.
    """
    best = cs.list_price
    for t, k, _ in cs.cost_terms:
        if shared is not None and k.kind == "spend_commitment":
            c = shared[t]
            if c is None:
                c = shared[t] = _contract_cost(k, cs, gpus, now)
        else:
            c = _contract_cost(k, cs, gpus, now)
        if c is not None and c < best:
            best = c
    return best


def spent_on_schedule(k: ContractState, now: float) -> float:
    """What a spend commitment has drawn down if it was used exactly on schedule (straight line)."""
    if k.kind != "spend_commitment" or now <= k.start:
        return 0.0
    return k.commitment_usd * min(1.0, (now - k.start) / (k.end - k.start))
