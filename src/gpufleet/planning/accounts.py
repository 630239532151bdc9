"""Money in a plan: per contract (used, wasted, overage) and the cost breakdown that sums to the objective."""

from __future__ import annotations

from typing import Any

import numpy as np

from .billing import Commitment
from .periods import window_days
from .problem import Problem
from .solution import Plan


def _r(x: float, nd: int = 2) -> float:
    return round(float(x), nd) + 0.0   # no negative zeros in the document


def _schedule(com: Commitment, pr: Problem) -> list[float]:
    """The straight-line schedule inside the plan: committed × (term days elapsed since the plan's start) / term."""
    days = window_days(com.start, com.end, pr.periods.ordinals)
    term = max(1, (com.end - com.start).days)
    return [_r(x) for x in np.cumsum(days) * com.committed_usd / term]


def _commitment_rows(plan: Plan, pr: Problem) -> list[dict[str, Any]]:
    bl = pr.billing
    spend = plan.billed * bl.rate
    rows = []
    for k, com in enumerate(bl.commitments):
        mine = bl.commit == k
        drawn = float(spend[mine].sum())
        rows.append({"contract": com.contract, "kind": "spend_commitment", "provider": com.provider,
                     "committed_usd": _r(com.committed_usd), "committed_in_plan_usd": _r(com.window_usd),
                     "used_gpu_hours": _r(plan.billed[mine].sum(), 1), "drawn_usd": _r(drawn),
                     "paid_usd": _r(max(com.window_usd, drawn)),
                     "wasted_usd": _r(max(0.0, com.window_usd - drawn)),
                     "overage_usd": _r(max(0.0, drawn - com.window_usd)),
                     "start": com.start.isoformat(), "end": com.end.isoformat(),
                     "drawn_by_period_usd": [_r(x) for x in np.where(mine, spend, 0.0).sum(axis=0)],
                     "schedule_cumulative_usd": _schedule(com, pr)})
    return rows


def _pool_rows(plan: Plan, pr: Problem) -> dict[str, dict[str, Any]]:
    """Reservations (and options bought into them): paid, covered, idle."""
    bl = pr.billing
    out: dict[str, dict[str, Any]] = {}
    for k, pool in enumerate(bl.pools):
        mine = [(e, g) for e, g in zip(bl.options, plan.options_gpus) if e.pool == k]
        base_h = float(pool.base_hours.sum())
        opt_h = sum(float(e.cover_hours.sum()) * g for e, g in mine)
        opt_usd = sum(e.cost_per_gpu * g for e, g in mine)
        covered = float(plan.covered[k].sum())
        # covered hours fill the reservation first, then the options bought into it
        idle_base = max(0.0, base_h - covered)
        idle_opt = max(0.0, opt_h - max(0.0, covered - base_h))
        opt_rate = opt_usd / opt_h if opt_h else 0.0
        out[pool.contract] = {"reserved_gpu_hours": _r(base_h, 1), "options_gpu_hours": _r(opt_h, 1),
                              "covered_gpu_hours": _r(covered, 1),
                              "reserved_usd": base_h * pool.price_per_gpu_hour, "options_usd": opt_usd,
                              "wasted_usd": idle_base * pool.price_per_gpu_hour + idle_opt * opt_rate}
    return out


def per_contract(plan: Plan, pr: Problem) -> list[dict[str, Any]]:
    """One row per contract in the scenario's order, then one `list-price:PROVIDER` row per provider billed at
    list price on clusters no contract covers. `overage_usd` is money beyond what was committed: usage past a
    spend commitment, and everything billed on demand or at list price."""
    bl = pr.billing
    spend = plan.billed * bl.rate
    commits = {r["contract"]: r for r in _commitment_rows(plan, pr)}
    pools = _pool_rows(plan, pr)
    rows: list[dict[str, Any]] = []
    for name in _contract_order(pr):
        row = commits.get(name)
        if name in pools:
            p = pools[name]
            if row is None:
                pool = next(x for x in bl.pools if x.contract == name)
                row = {"contract": name, "kind": pool.kind, "provider": pool.provider,
                       "committed_usd": _r(p["reserved_usd"]), "used_gpu_hours": p["covered_gpu_hours"],
                       "paid_usd": _r(p["reserved_usd"] + p["options_usd"]), "wasted_usd": _r(p["wasted_usd"]),
                       "overage_usd": 0.0}
            else:
                row["paid_usd"] = _r(row["paid_usd"] + p["options_usd"])
                row["wasted_usd"] = _r(row["wasted_usd"] + p["wasted_usd"])
            row |= {"reserved_gpu_hours": p["reserved_gpu_hours"], "options_gpu_hours": p["options_gpu_hours"],
                    "covered_gpu_hours": p["covered_gpu_hours"], "options_usd": _r(p["options_usd"])}
        if row is None and name in bl.on_demand_contracts:
            mine = bl.on_demand == bl.on_demand_contracts.index(name)
            usd = float(spend[mine].sum())
            provider = pr.providers[int(pr.provider_of[np.nonzero(mine.any(axis=1))[0][0]])] if mine.any() else ""
            row = {"contract": name, "kind": "on_demand", "provider": provider, "committed_usd": 0.0,
                   "used_gpu_hours": _r(plan.billed[mine].sum(), 1), "paid_usd": _r(usd), "wasted_usd": 0.0,
                   "overage_usd": _r(usd)}
        if row is not None:
            rows.append(row)
    bare = (bl.commit < 0) & (bl.on_demand < 0)
    for q, prov in enumerate(pr.providers):
        mine = bare & (pr.provider_of == q)[:, None]
        if plan.billed[mine].sum() > 0:
            usd = float(spend[mine].sum())
            rows.append({"contract": f"list-price:{prov}", "kind": "list_price", "provider": prov,
                         "committed_usd": 0.0, "used_gpu_hours": _r(plan.billed[mine].sum(), 1),
                         "paid_usd": _r(usd), "wasted_usd": 0.0, "overage_usd": _r(usd)})
    return rows


def _contract_order(pr: Problem) -> list[str]:
    bl = pr.billing
    names = [c.contract for c in bl.commitments] + [p.contract for p in bl.pools] + list(bl.on_demand_contracts)
    return list(dict.fromkeys(names))


def cost_breakdown(plan: Plan, pr: Problem) -> dict[str, float]:
    """Parts that add up to `objective_usd`."""
    bl = pr.billing
    spend = plan.billed * bl.rate
    committed = bl.commit >= 0
    on_demand = ~committed & (bl.on_demand >= 0)
    parts = {
        "reserved_usd": bl.fixed_usd,
        "options_usd": sum(e.cost_per_gpu * g for e, g in zip(bl.options, plan.options_gpus)),
        "commitment_drawn_usd": float(spend[committed].sum()),
        "commitment_shortfall_usd": float(plan.shortfall_usd.sum()),
        "on_demand_usd": float(spend[on_demand].sum()),
        "list_price_usd": float(spend[~committed & ~on_demand].sum()),
        "unmet_penalty_usd": pr.unmet_penalty * float(plan.unmet.sum() + plan.unmet_budget.sum()),
    }
    parts["total_usd"] = sum(parts.values())
    return {k: _r(v) for k, v in parts.items()}


def bound_usd(plan: Plan, pr: Problem) -> float:
    """The plan's cost without the unmet-demand penalty: on its window, no placement of the same work in the
    same units costs less (the LP bound online decisions are measured against)."""
    parts = cost_breakdown(plan, pr)
    return parts["total_usd"] - parts["unmet_penalty_usd"]


def wasted_usd(plan: Plan, pr: Problem) -> float:
    return float(sum(r["wasted_usd"] for r in per_contract(plan, pr)))
