"""An independent validator: does a plan keep every promise of the problem, and does its cost add up?

It reads the plan's arrays (GPU-hours, USD), never the LP, and returns one readable reason per violation
(an empty list means the plan is valid). Tests run it on every plan they make.
"""

from __future__ import annotations

import numpy as np

from .problem import Problem
from .solution import Plan

REL = 1e-6      # relative tolerance (HiGHS's feasibility tolerance is 1e-7 on the scaled model)


def _tol(scale) -> np.ndarray:
    return REL * np.maximum(1.0, np.abs(scale))


def _report(out: list[str], bad: np.ndarray, what: str, where) -> None:
    idx = np.argwhere(bad)
    for i in idx[:5]:
        out.append(f"{what} at {where(*i)}")
    if len(idx) > 5:
        out.append(f"{what}: {len(idx) - 5} more")


def _demand(plan: Plan, pr: Problem, out: list[str]) -> None:
    st = pr.streams
    got = plan.delivered()
    per = ~st.is_training
    lhs = got + plan.unmet
    bad = per[:, None] & (np.abs(lhs - st.demand) > _tol(st.demand))
    _report(out, bad, "demand: delivered + unmet ≠ asked",
            lambda s, p: f"{st.names[s]} {pr.periods.labels[p]} ({lhs[s, p]:.6g} vs {st.demand[s, p]:.6g})")
    tot = (got * st.window).sum(axis=1) + plan.unmet_budget
    bad = st.is_training & (np.abs(tot - st.budget) > _tol(st.budget))
    _report(out, bad, "training budget: delivered + unmet ≠ budget", lambda s: f"{st.names[s]}")
    gang = plan.usage.sum(axis=1)
    bad = st.is_training[:, None] & (gang > st.rate_cap + _tol(st.rate_cap))
    _report(out, bad, "one gang at a time exceeded", lambda s, p: f"{st.names[s]} {pr.periods.labels[p]}")


def _policies(plan: Plan, pr: Problem, out: list[str]) -> None:
    labels = pr.periods.labels
    for lim in pr.limits:
        use = plan.provider_use(lim.classes)
        total = use.sum(axis=0)
        qs = range(len(pr.providers)) if lim.provider is None else (
            [pr.providers.index(lim.provider)] if lim.provider in pr.providers else [])
        for q in qs:
            bad = use[q] > lim.max_share * total + _tol(total)
            _report(out, bad, f"concentration cap {lim.label} ≤ {lim.max_share:.0%} broken",
                    lambda p, q=q: f"{pr.providers[q]} {labels[p]}")
    if pr.n1_fraction <= 0 or not pr.critical or len(pr.providers) < 2:
        return
    spare = plan.provider_capacity() - plan.provider_use()
    crit = plan.provider_use(pr.critical)
    for q in range(len(pr.providers)):
        others = spare.sum(axis=0) - spare[q]
        need = pr.n1_fraction * crit[q]
        bad = others < need - _tol(need + spare.sum(axis=0))
        _report(out, bad, "N-1: other providers' spare capacity short of the critical work",
                lambda p, q=q: f"losing {pr.providers[q]} in {labels[p]}")


def _billing(plan: Plan, pr: Problem, out: list[str]) -> None:
    bl, use = pr.billing, plan.use_cp
    covered = plan.covered.sum(axis=0)
    bad = np.abs(covered + plan.billed - use) > _tol(use)
    _report(out, bad, "billing: covered + billed ≠ used", lambda c, p: f"{pr.clusters[c]} {pr.periods.labels[p]}")
    for k, pool in enumerate(bl.pools):
        mine = np.zeros(len(pr.clusters), bool)
        mine[list(pool.clusters)] = True
        if (plan.covered[k][~mine] > 0).any():
            out.append(f"pool {pool.contract} covers a cluster it does not cover")
        limit = pool.base_hours + sum(e.cover_hours * g for e, g in zip(bl.options, plan.options_gpus)
                                      if e.pool == k)
        got = plan.covered[k].sum(axis=0)
        _report(out, got > limit + _tol(limit), f"pool {pool.contract} covers more than it holds",
                lambda p: pr.periods.labels[p])
    for e, g in zip(bl.options, plan.options_gpus):
        if g < -1e-9 or g > e.gpus * (1 + REL):
            out.append(f"option {e.contract}#{e.index}: {g} GPUs outside [0, {e.gpus}]")


def recompute_cost(plan: Plan, pr: Problem) -> float:
    """The plan's cost from its arrays: reserved + billed usage + take-or-pay shortfalls + options + penalties."""
    bl = pr.billing
    cost = bl.fixed_usd + float((plan.billed * bl.rate).sum())
    for k, com in enumerate(bl.commitments):
        drawn = float((plan.billed * bl.rate)[bl.commit == k].sum())
        cost += max(0.0, com.window_usd - drawn)
    cost += sum(e.cost_per_gpu * g for e, g in zip(bl.options, plan.options_gpus))
    return cost + pr.unmet_penalty * float(plan.unmet.sum() + plan.unmet_budget.sum())


def check_plan(plan: Plan, pr: Problem) -> list[str]:
    """Every violated promise, as a sentence; [] when the plan is valid."""
    out: list[str] = []
    st = pr.streams
    for name, arr in (("usage", plan.usage), ("unmet", plan.unmet), ("unmet budget", plan.unmet_budget),
                      ("billed", plan.billed), ("covered", plan.covered), ("shortfall", plan.shortfall_usd)):
        if (arr < -_tol(arr.max(initial=0.0))).any():
            out.append(f"{name} has a negative value ({arr.min():.6g})")
    where = st.eligible[:, :, None] & st.window[:, None, :]
    if (plan.usage[~where] > 1e-6).any():
        out.append("usage on a cluster or in a period the stream may not use")
    use = plan.use_cp
    _report(out, use > pr.capacity + _tol(pr.capacity), "capacity exceeded",
            lambda c, p: f"{pr.clusters[c]} {pr.periods.labels[p]} ({use[c, p]:.6g} > {pr.capacity[c, p]:.6g})")
    _demand(plan, pr, out)
    _policies(plan, pr, out)
    _billing(plan, pr, out)
    cost = recompute_cost(plan, pr)
    if abs(cost - plan.objective_usd) > 1e-6 * max(1.0, abs(cost)):
        out.append(f"cost does not add up: recomputed {cost:,.2f} vs objective {plan.objective_usd:,.2f}")
    return out
