"""The simulation's result document: stable keys (docs/cli.md), plain JSON types, deterministic order."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .metrics import percentile

if TYPE_CHECKING:
    from .simulator import Simulator


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def summarize(sim: "Simulator", end: float, wall_s: float) -> dict:
    m, acc, state = sim.metrics, sim.acc, sim.state
    used_h = sum(acc.total_used_s) / 3600.0
    cap_h = sum(acc.total_cap_s) / 3600.0
    lost_h = m.lost_gpu_s / 3600.0
    running = len(sim.running)
    commitments = acc.commitments(sim.t0, end)
    commit_wasted = sum(c["wasted_usd"] for c in commitments)
    reserved_wasted = sum(acc.reserved_wasted_usd.values())
    # Take-or-pay: what was drawn, plus what is owed anyway for the unused part of each commitment.
    cost = sum(acc.spend_by_provider.values()) + commit_wasted
    asked = sum(m.asked_s.values())
    providers = {}
    for p in state.providers:
        idx = [cs.index for cs in state.clusters if cs.provider == p]
        pu = sum(acc.total_used_s[i] for i in idx) / 3600.0
        pc = sum(acc.total_cap_s[i] for i in idx) / 3600.0
        owed = sum(c["wasted_usd"] for c in commitments if c["provider"] == p)
        providers[p] = {"gpu_hours": _r(pu, 1), "capacity_gpu_hours": _r(pc, 1),
                        "utilization": _r(pu / pc if pc else 0.0, 4),
                        "cost_usd": _r(acc.spend_by_provider.get(p, 0.0) + owed, 2)}
    contracts = []
    for k in state.contracts:
        row = {"contract": k.name, "kind": k.kind, "provider": k.spec.provider,
               "billed_usd": _r(acc.spend_by_contract[k.name], 2)}
        if k.kind == "reserved_capacity":
            row["wasted_usd"] = _r(acc.reserved_wasted_usd[k.name], 2)
        c = next((c for c in commitments if c["contract"] == k.name), None)
        if c is not None:
            row |= {key: _r(v, 2) for key, v in c.items() if key.endswith("_usd")}
        contracts.append(row)
    services = {}
    for svc in sim.services:
        a, s = m.asked_s.get(svc.name, 0.0), m.served_s.get(svc.name, 0.0)
        services[svc.name] = {"asked_replica_hours": _r(a / 3600.0, 1), "served_replica_hours": _r(s / 3600.0, 1),
                              "slo_attainment": _r(min(1.0, s / a) if a else 1.0, 4)}
    queued = sim.queued
    return {
        "scenario": sim.p.scenario.name,
        "profile": sim.engine.profile.name,
        "queue": sim.opt.queue,
        "start": _iso(sim.t0),
        "end": _iso(end),
        "jobs": m.jobs,
        "finished": m.finished,
        "failed": m.failed,
        "queued": queued,
        "running": running,
        "jobs_by_kind": dict(sorted(m.by_kind.items())),
        "failed_reasons": dict(sorted(m.failed_reasons.items())),
        "avg_wait_s": _r(sum(m.waits) / len(m.waits) if m.waits else 0.0, 1),
        "p50_wait_s": _r(percentile(m.waits, 0.5), 1),
        "p95_wait_s": _r(percentile(m.waits, 0.95), 1),
        "p99_wait_s": _r(percentile(m.waits, 0.99), 1),
        "avg_jct_s": _r(sum(m.jcts) / len(m.jcts) if m.jcts else 0.0, 1),
        "p50_jct_s": _r(percentile(m.jcts, 0.5), 1),
        "utilization": _r(used_h / cap_h if cap_h else 0.0, 4),
        "goodput": _r((used_h - lost_h) / cap_h if cap_h else 0.0, 4),
        "gpu_hours": _r(used_h, 1),
        "capacity_gpu_hours": _r(cap_h, 1),
        "cost_usd": _r(cost, 2),
        "commitment_wasted_usd": _r(commit_wasted, 2),
        "reserved_wasted_usd": _r(reserved_wasted, 2),
        "on_demand_usd": _r(acc.on_demand_usd + acc.list_usd, 2),
        "lost_gpu_hours": _r(lost_h, 1),
        "restarts": m.restarts,
        "preemptions": m.preemptions,
        "failures": dict(sorted(m.failures.items())),
        "deadlines": {"met": m.deadlines_met, "missed": m.deadlines_missed},
        "inference_slo_attainment": _r(min(1.0, sum(m.served_s.values()) / asked) if asked else 1.0, 4),
        "inference": services,
        "per_provider": providers,
        "per_contract": contracts,
        "trace_import": sim.trace_reports,
        "trace_ran_on": {asked: dict(sorted(ran.items())) for asked, ran in sorted(sim.trace_ran.items())},
        "events": sim.loop.processed,
        "wall_s": _r(wall_s, 3),
        "events_per_s": _r(sim.loop.processed / wall_s if wall_s > 0 else 0.0, 0),
        "timeseries": timeseries(sim),
    }


def failure_timeline(log: list[tuple[float, str, str, int]]) -> list[dict]:
    """Every outage and cluster failure; random domain failures summed per day (there are thousands)."""
    out: list[dict] = []
    days: dict[float, list[int]] = {}
    for t, kind, target, n in log:
        if kind == "domain":
            day = t - t % 86400.0
            c = days.setdefault(day, [0, 0])
            c[0] += 1
            c[1] += n
        else:
            out.append({"t": _iso(t), "kind": kind, "target": target, "jobs": n})
    out += [{"t": _iso(day), "kind": "domain", "target": f"{c[0]} domain(s)", "jobs": c[1]} for day, c in days.items()]
    return sorted(out, key=lambda f: (f["t"], f["kind"], f["target"]))


def timeseries(sim: "Simulator", max_points: int = 2000) -> dict:
    """Per-tick series, thinned to at most `max_points` points (evenly) so reports stay small."""
    m = sim.metrics
    n = len(m.ts_t)
    step = max(1, -(-n // max_points))
    keep = list(range(0, n, step))

    def pick(xs: list[float], nd: int = 2) -> list[float]:
        return [_r(xs[i], nd) for i in keep]

    return {
        "t": [_iso(m.ts_t[i]) for i in keep],
        "allocated_gpus": {p: pick(v, 1) for p, v in m.ts_used.items()},
        "capacity_gpus": {p: pick(v, 1) for p, v in m.ts_cap.items()},
        "class_share": {cls: {p: pick(v, 4) for p, v in shares.items()} for cls, shares in m.ts_share.items()},
        "contract_billed_usd": {k: pick(v, 0) for k, v in m.ts_spent.items()},
        "failures": failure_timeline(m.failure_log),
    }
