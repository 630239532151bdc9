"""What the fleet has cost so far: GPU-hours from the placements and fees recorded by backends, billed under
the contracts by the simulator's `Accounting`, so the live server and the simulator price the same way.

Usage is exact: each cluster's allocated GPU-seconds are integrated from the placements' start and end
times, then billed hour by UTC hour in the order the accounting uses: reserved capacity in force (paid
whether used or not), then a spend commitment, then on-demand or list price. History is priced with the
portfolio given (the one in force now); usage on clusters it no longer has is reported as unpriced. A fee (a Capacity Block's upfront price) draws down the provider's spend
commitment in force when it was paid (one covering the fee's cluster when it names one), else it is spend
outside any contract. `spend` is pure; `read_rows` is the one place that reads the database for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..model.scenario import Portfolio
from ..placement.costs import spent_on_schedule
from ..placement.state import ContractState, FleetState, to_seconds
from ..simulation.accounting import Accounting
from ..store import tables as T

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Usage:
    """One placement: `gpus` on `cluster` from `start` until `end` (None: still running)."""

    cluster: str
    gpus: int
    start: float
    end: float | None
    team: str | None = None   # the job's team (spend per team)


@dataclass(frozen=True, slots=True)
class Fee:
    at: float
    provider: str
    cluster: str | None
    kind: str
    usd: float
    ref: str | None = None


def _integral(usage: list[Usage], edges: np.ndarray, until: float) -> np.ndarray:
    """Allocated GPU-seconds from edges[0] to each edge: sum over placements of gpus * overlap."""
    if not usage:
        return np.zeros(len(edges))
    a = np.array([u.start for u in usage], dtype=float)
    b = np.array([until if u.end is None else u.end for u in usage], dtype=float)
    g = np.array([u.gpus for u in usage], dtype=float)
    lo = edges[0]
    # relative to the window's start: absolute epoch seconds times GPU counts would exhaust float precision
    a, b = np.clip(a, lo, until) - lo, np.clip(b, lo, until) - lo
    rel = edges - lo
    keep = b > a
    a, b, g = a[keep], b[keep], g[keep]

    def ramp(x: np.ndarray, w: np.ndarray) -> np.ndarray:  # sum over i of w_i * max(0, t - x_i) at each edge
        order = np.argsort(x)
        xs, ws = x[order], w[order]
        cw, cwx = np.concatenate(([0.0], np.cumsum(ws))), np.concatenate(([0.0], np.cumsum(ws * xs)))
        k = np.searchsorted(xs, rel, side="right")
        return cw[k] * rel - cwx[k]

    return ramp(a, g) - ramp(b, g)


def _commitment_for(state: FleetState, fee: Fee) -> ContractState | None:
    best = None
    for k in state.contracts:
        if k.kind != "spend_commitment" or k.spec.provider != fee.provider or not k.in_force(fee.at):
            continue
        if fee.cluster is not None and fee.cluster in k.clusters:
            return k
        best = best or k
    return best


def hour_edges(since: float, until: float) -> np.ndarray:
    """since, every whole UTC hour strictly between, until: the same hours whatever window they fall in."""
    first, last = math.floor(since / HOUR) + 1, math.ceil(until / HOUR) - 1
    inner = np.arange(first, last + 1, dtype=float) * HOUR if last >= first else np.zeros(0)
    return np.concatenate(([since], inner, [until])) if until > since else np.array([since, since])


def spend(portfolio: Portfolio, usage: Iterable[Usage], fees: Iterable[Fee], since: float, until: float) -> dict:
    """The bill for [since, until): per provider, per contract, per cluster, with fees and commitments.
    Billed hour by UTC hour (reserved capacity covers usage within each hour), so splitting a window into
    parts at whole hours gives the same total."""
    until = max(until, since)
    state = FleetState(portfolio, since)
    acc = Accounting(state, since)
    edges = hour_edges(since, until)
    n = len(edges) - 1
    by_cluster: dict[str, list[Usage]] = {}
    unpriced: dict[str, float] = {}
    for u in usage:
        if u.cluster in state.by_name:
            by_cluster.setdefault(u.cluster, []).append(u)
        else:  # a cluster no longer in the portfolio: its hours are reported, not priced
            end = until if u.end is None else min(u.end, until)
            unpriced[u.cluster] = unpriced.get(u.cluster, 0.0) + u.gpus * max(0.0, end - max(u.start, since)) / HOUR
    integ = {c: _integral(us, edges, until) for c, us in by_cluster.items()}
    gpu_hours = {c: float(v[-1] / HOUR) for c, v in integ.items()}
    for j in range(n):
        t0, t1 = float(edges[j]), float(edges[j + 1])
        state.set_time((t0 + t1) / 2)  # reservations and ramps in force in this tick
        for c, v in integ.items():
            acc.used_s[state.by_name[c].index] += float(v[j + 1] - v[j])
        acc.tick(t0, t1)

    fee_rows = []
    fees_by_provider: dict[str, float] = {}
    fees_by_contract: dict[str, float] = {}
    outside = 0.0
    for f in sorted(fees, key=lambda f: f.at):
        if not since <= f.at < until:
            continue
        k = _commitment_for(state, f)
        if k is not None:
            k.spent_usd += f.usd
            fees_by_contract[k.name] = fees_by_contract.get(k.name, 0.0) + f.usd
        else:
            outside += f.usd
        fees_by_provider[f.provider] = fees_by_provider.get(f.provider, 0.0) + f.usd
        fee_rows.append({"at": f.at, "provider": f.provider, "cluster": f.cluster, "kind": f.kind, "usd": f.usd,
                         "ref": f.ref, "contract": k.name if k is not None else None})

    contracts = []
    for k in state.contracts:
        usage_usd = acc.spend_by_contract.get(k.name, 0.0)
        row: dict = {"contract": k.name, "kind": k.kind, "provider": k.spec.provider,
                     "usage_usd": usage_usd, "fees_usd": fees_by_contract.get(k.name, 0.0)}
        row["usd"] = row["usage_usd"] + row["fees_usd"]
        if k.kind == "reserved_capacity":
            row["idle_usd"] = acc.reserved_wasted_usd.get(k.name, 0.0)
        if k.kind == "spend_commitment":
            on_schedule = spent_on_schedule(k, until) - spent_on_schedule(k, since)
            row.update(committed_usd=k.commitment_usd, start=k.start, end=k.end,
                       on_schedule_usd=on_schedule,
                       pace=(row["usd"] / on_schedule) if on_schedule > 0 else None)
        contracts.append(row)
    providers = sorted(set(acc.spend_by_provider) | set(fees_by_provider))
    prov_rows = [{"provider": p, "usage_usd": acc.spend_by_provider.get(p, 0.0),
                  "fees_usd": fees_by_provider.get(p, 0.0),
                  "usd": acc.spend_by_provider.get(p, 0.0) + fees_by_provider.get(p, 0.0)} for p in providers]
    return {
        "since": since, "until": until,
        "total_usd": sum(r["usd"] for r in prov_rows),
        "usage_usd": sum(acc.spend_by_provider.values()),
        "fees_usd": sum(fees_by_provider.values()),
        "on_demand_usd": acc.on_demand_usd,
        "list_price_usd": acc.list_usd,
        "fees_outside_contracts_usd": outside,
        "reserved_idle_usd": sum(acc.reserved_wasted_usd.values()),
        "providers": prov_rows,
        "contracts": contracts,
        "clusters": [{"cluster": c, "provider": state.by_name[c].provider, "gpu_hours": h}
                     for c, h in sorted(gpu_hours.items())],
        "fees": fee_rows,
        "unpriced": [{"cluster": c, "gpu_hours": h} for c, h in sorted(unpriced.items()) if h > 0],
    }


def read_rows(s: Session, since: float, until: float) -> tuple[list[Usage], list[Fee]]:
    """The placements that overlap [since, until] and the fees paid in it."""
    P, J = T.Placement, T.Job
    usage = [Usage(c, sum(int(n) for _, n in parts), a, b, team) for c, parts, a, b, team in s.execute(
        select(P.cluster, P.parts, P.placed_at, P.released_at, J.team).outerjoin(J, J.id == P.job_id)
        .where(P.placed_at < until, or_(P.released_at.is_(None), P.released_at > since)))]
    C = T.Charge
    fees = [Fee(r.at, r.provider, r.cluster, r.kind, r.usd, r.ref)
            for r in s.scalars(select(C).where(C.at >= since, C.at < until, C.status == "done").order_by(C.at))]
    return usage, fees


def window_bill(s: Session, portfolio: Portfolio, t0: float, t1: float, teams: bool = False) -> dict:
    """The bill of [t0, t1) from the database (`gpufleet spend`, the dashboard, `gpufleet status`)."""
    usage, fees = read_rows(s, t0, t1)
    # Nothing costs anything before the first contract, placement or fee: bill from the whole hour it
    # falls in, so a window that opens years earlier costs no time and bills the same.
    starts = [to_seconds(k.start) for k in portfolio.contracts] + [u.start for u in usage] + [f.at for f in fees]
    t_bill = min(t1, max(t0, math.floor(min(starts, default=t1) / HOUR) * HOUR))
    bill = spend(portfolio, usage, fees, t_bill, t1)
    if teams:
        bill["teams"] = team_spend(bill, usage, t_bill, t1)
    return bill


def team_spend(bill: dict, usage: Iterable[Usage], since: float, until: float) -> list[dict]:
    """Each team's GPU-hours in [since, until) and what they cost at each provider's billed rate (the
    provider's usage dollars over its GPU-hours): contracts bill providers, not teams, so a team's share of a
    provider's bill is its share of the hours there."""
    provider_of = {c["cluster"]: c["provider"] for c in bill["clusters"]}
    hours: dict[str, float] = {}
    for c in bill["clusters"]:
        hours[c["provider"]] = hours.get(c["provider"], 0.0) + c["gpu_hours"]
    rate = {p["provider"]: p["usage_usd"] / hours[p["provider"]] for p in bill["providers"] if hours.get(p["provider"])}
    teams: dict[str, list[float]] = {}
    for u in usage:
        if u.team is None:
            continue
        h = u.gpus * max(0.0, min(until, u.end if u.end is not None else until) - max(u.start, since)) / HOUR
        t = teams.setdefault(u.team, [0.0, 0.0])
        t[0] += h
        t[1] += h * rate.get(provider_of.get(u.cluster, ""), 0.0)
    return [{"team": k, "gpu_hours": v[0], "usd": v[1]} for k, v in sorted(teams.items())]


class BurnDown:
    """What each spend commitment has drawn so far (usage billed under the contracts plus fees): the
    burn-down the engine's cost scorer weighs. Incremental: whole UTC hours not yet billed are billed and
    added up (the bill of a window is the sum of its hours' bills); the unfinished hour is billed each time
    on top; after a portfolio change (`reset`), from the start again."""

    def __init__(self) -> None:
        self.read_at = 0.0                  # when it was last read back
        self._billed_until: float | None = None
        self._drawn: dict[str, float] = {}

    def reset(self) -> None:
        self.read_at = 0.0
        self._billed_until = None

    def refresh(self, s: Session, portfolio: Portfolio, state: FleetState, now: float) -> None:
        self.read_at = now
        commitments = [k for k in state.contracts if k.kind == "spend_commitment"]
        if not commitments:
            return
        start = self._billed_until if self._billed_until is not None else min(k.start for k in commitments)
        end = max(start, float(int(now // HOUR) * HOUR))
        usage, fees = read_rows(s, start, now)
        done = spend(portfolio, usage, fees, start, end) if end > start else None
        current = spend(portfolio, usage, fees, end, now)  # the unfinished hour: not kept
        if self._billed_until is None:
            self._drawn = {}
        if done is not None:
            for r in done["contracts"]:
                self._drawn[r["contract"]] = self._drawn.get(r["contract"], 0.0) + r["usd"]
        self._billed_until = end
        now_usd = {r["contract"]: r["usd"] for r in current["contracts"]}
        for k in commitments:
            k.spent_usd = self._drawn.get(k.name, 0.0) + now_usd.get(k.name, 0.0)
