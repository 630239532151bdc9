"""`gpufleet place`: where one job would go now, or why it cannot go anywhere yet."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..catalog import bundled_catalog
from ..model.scenario import Portfolio
from ..placement.costs import spent_on_schedule
from ..placement.engine import Engine
from ..placement.profiles import get_profile
from ..placement.request import Allocation, Decision
from ..placement.state import to_seconds
from ..scheduling.scheduler import Scheduler
from ..scheduling.translate import job_work
from .common import (
    EXIT_BAD_INPUT,
    EXIT_UNPLACEABLE,
    emit_json,
    err,
    escape,
    job_or_exit,
    out,
    scenario_or_exit,
)


def _parse_at(at: str | None, p: Portfolio) -> datetime:
    if at is None:
        today = datetime.now(timezone.utc).date()  # the CLI is an edge: it may read the clock
        day = min(max(today, p.start), date.fromordinal(p.end.toordinal() - 1))
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    try:
        t = datetime.fromisoformat(at)
    except ValueError:
        err.print(f"[red]error[/] --at: expected an ISO date or date-time such as 2026-06-01, found {escape(at)!r}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _spent(items: list[str], engine: Engine) -> None:
    by_name = {k.name: k for k in engine.state.contracts}
    for k in engine.state.contracts:
        k.spent_usd = spent_on_schedule(k, engine.state.now)
    for item in items:
        name, sep, usd = item.partition("=")
        k = by_name.get(name)
        try:
            value = float(usd)
        except ValueError:
            value = -1.0
        if not sep or k is None or not (0 <= value < 1e15):
            err.print(f"[red]error[/] --spent: expected CONTRACT=USD with a known contract "
                      f"({', '.join(by_name) or 'none'}), found {escape(item)!r}")
            raise typer.Exit(EXIT_BAD_INPUT)
        k.spent_usd = value


def _alloc_json(a: Allocation, d: Decision, p: Portfolio) -> dict:
    c = p.clusters[a.cluster]
    return {"cluster": a.cluster, "provider": c.provider, "region": c.region, "area": c.area, "gpu": c.gpu.name,
            "domains": [{"domain": dom, "gpus": n} for dom, n in a.parts],
            "cost_per_gpu_hour": d.cost_per_gpu_hour, "list_price_per_gpu_hour": c.price_per_gpu_hour,
            "score": d.score, "victims": list(d.victims)}


def place(scenario: Annotated[str, typer.Argument(help="scenario YAML file")],
          job: Annotated[str, typer.Argument(help="job YAML file")],
          at: Annotated[Optional[str], typer.Option(help="when (ISO date); default today within the scenario")] = None,
          profile: Annotated[Optional[str], typer.Option(help="placement profile (cost, binpack, spread, list-price)")] = None,
          spent: Annotated[list[str], typer.Option(help="burn-down: CONTRACT=USD drawn so far (default on schedule)")] = [],  # noqa: B006
          explain: Annotated[bool, typer.Option("--explain", help="show every candidate's verdict")] = False,
          as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Place one job on an empty fleet at a date: exit 0 if placed, 3 if it cannot be placed now, 2 on bad input."""
    p = scenario_or_exit(scenario)
    spec = job_or_exit(job)
    when = _parse_at(at, p)
    try:
        prof = get_profile(profile or p.policies.default_profile)
    except KeyError as e:
        err.print(f"[red]error[/] --profile: {escape(str(e.args[0]))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    engine = Engine(p, to_seconds(when), prof)
    _spent(spent, engine)
    cat = bundled_catalog().with_gpus(list(p.scenario.gpu_types))
    work = job_work(spec, cat, to_seconds(when))
    sched = Scheduler(engine)
    if spec.kind == "inference":
        res = sched.place_set(work, explain=True, partial=True)
        ok = not res.unplaced and len(res.providers) >= min(spec.min_providers, len(p.providers))
        doc = {"placed": ok, "job": spec.name, "kind": spec.kind, "at": when.isoformat(), "profile": prof.name,
               "replicas": [_alloc_json(a, d, p) | {"replica": d.request.id} for d, a in res.placed],
               "providers": sorted(res.providers),
               "unplaced": [{"replica": d.request.id, "reason": d.reason} for d in res.unplaced],
               "explanation": [v.to_json() for v in (res.unplaced[0] if res.unplaced else res.placed[0][0]).verdicts]}
        _print_replicas(doc, spec.min_providers, as_json, explain)
    else:
        req = work.request
        res = sched.place_set(work, explain=True)
        d = res.placed[0][0] if res.placed else res.unplaced[0]
        a = res.placed[0][1] if res.placed else None
        doc = {"placed": d.placed, "job": spec.name, "kind": spec.kind, "at": when.isoformat(), "profile": prof.name,
               "gpus": req.gpus, "tp": req.group, **(_alloc_json(a, d, p) if a else {"cluster": None}),
               "reason": d.reason, "explanation": [v.to_json() for v in d.verdicts]}
        ok = d.placed
        _print_gang(doc, as_json, explain)
    if not ok:
        raise typer.Exit(EXIT_UNPLACEABLE)


def _explain_table(rows: list[dict]) -> Table:
    t = Table(title="candidates")
    for col in ("cluster", "verdict", "detail"):
        t.add_column(col)
    for v in sorted(rows, key=lambda v: (not v["feasible"], -(v.get("total") or 0))):
        if v["feasible"]:
            detail = ", ".join(f"{k} {s:.2f}" for k, s in v["scores"].items())
            t.add_row(v["cluster"], f"score {v['total']:.3f}", detail)
        else:
            t.add_row(v["cluster"], f"[red]{v['filter']}[/]", escape(v["reason"]))
    return t


def _print_gang(doc: dict, as_json: bool, explain: bool) -> None:
    if as_json:
        emit_json(doc)
        return
    if doc["placed"]:
        n = len(doc["domains"])
        out.print(f"[green]placed[/] {doc['job']}: {doc['gpus']:,} GPU{'s' if doc['gpus'] != 1 else ''} on [bold]{doc['cluster']}[/] "
                  f"({doc['provider']} {doc['region']}, {doc['gpu']}) in {n} domain(s); "
                  f"effective ${doc['cost_per_gpu_hour']:.2f}/GPU-h (list ${doc['list_price_per_gpu_hour']:.2f})")
        if doc["victims"]:
            out.print(f"preempts: {', '.join(doc['victims'])}")
    else:
        out.print(f"[yellow]cannot place[/] {doc['job']} now: {escape(doc['reason'] or '')}")
    if explain or not doc["placed"]:
        out.print(_explain_table(doc["explanation"]))


def _print_replicas(doc: dict, min_providers: int, as_json: bool, explain: bool) -> None:
    if as_json:
        emit_json(doc)
        return
    t = Table(title=f"{doc['job']}: {len(doc['replicas'])} replica(s) placed on {', '.join(doc['providers']) or 'none'}")
    for col in ("replica", "cluster", "provider", "region", "$/GPU-h"):
        t.add_column(col)
    for r in doc["replicas"]:
        t.add_row(r["replica"], r["cluster"], r["provider"], r["region"], f"{r['cost_per_gpu_hour']:.2f}")
    out.print(t)
    for u in doc["unplaced"][:10]:
        out.print(f"[yellow]unplaced[/] {u['replica']}: {escape(u['reason'] or '')}")
    if len(doc["providers"]) < min_providers:
        out.print(f"[yellow]only {len(doc['providers'])} provider(s); the service asks for {min_providers}[/]")
    if explain:
        out.print(_explain_table(doc["explanation"]))
