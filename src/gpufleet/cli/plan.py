"""`gpufleet plan`: which contract and cluster should carry which workload, month by month (an LP, HiGHS)."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..model.scenario import Portfolio
from ..planning.baselines import baselines_doc
from ..planning.planner import solve_problem
from ..planning.problem import DEFAULT_UNMET_PENALTY, Problem, build_problem
from ..planning.result import plan_doc
from ..planning.simcheck import simulation_check
from ..planning.solution import Plan
from ..planning.whatif import WhatIf, WhatIfError, apply_what_if, compare, parse_what_if
from .common import EXIT_FAILURE, bad_input, emit_json, err, escape, out, scenario_or_exit, short

QUARTERS_AFTER = 24      # print quarters instead of months when the plan has more periods than this


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad_input(f"{option}: expected an ISO date such as 2026-06-01, found {value!r}") from None


def _problem(p: Portfolio, start: str | None, end: str | None, months: int, penalty: float) -> Problem:
    a, b = _day(start, "--from") or p.start, _day(end, "--to") or p.end
    if b <= a:
        raise bad_input(f"the plan must end after it starts: --from {a} --to {b}")
    if months < 1:
        raise bad_input("--period-months must be at least 1")
    if not 0 < penalty < 1e9:
        raise bad_input("--unmet-penalty must be a positive number of USD per GPU-hour")
    return build_problem(p, a, b, months, penalty)


def _what_ifs(specs: list[str], pr: Problem) -> list[WhatIf]:
    try:
        return [parse_what_if(s, pr) for s in specs]
    except WhatIfError as e:
        raise bad_input(f"--what-if {e}") from None


def _m(x: float) -> str:
    """GPU-hours, short: 12.3k, 4.56M, 7.89B."""
    return short(x)


def _usd(x: float) -> str:
    return f"${x:,.0f}"


def _groups(doc: dict[str, Any]) -> list[tuple[str, list[int]]]:
    """Rows of the provider table: one per period, or per calendar quarter when the plan is long."""
    periods = doc["periods"]
    if len(periods) <= QUARTERS_AFTER:
        return [(p["label"], [i]) for i, p in enumerate(periods)]
    rows: dict[str, list[int]] = {}
    for i, p in enumerate(periods):
        d = date.fromisoformat(p["start"])
        rows.setdefault(f"{d.year}-Q{(d.month - 1) // 3 + 1}", []).append(i)
    return list(rows.items())


def provider_table(doc: dict[str, Any]) -> Table:
    t = Table(title="GPU-hours planned / capacity per provider (k, M, B: thousands, millions, billions)")
    t.add_column("period")
    prov = doc["per_provider"]
    for name in prov:
        t.add_column(name, justify="right")
    for label, idx in _groups(doc):
        cells = [f"{_m(sum(v['gpu_hours'][i] for i in idx))} / {_m(sum(v['capacity_gpu_hours'][i] for i in idx))}"
                 for v in prov.values()]
        t.add_row(label, *cells)
    return t


def contract_table(doc: dict[str, Any]) -> Table:
    t = Table(title="contracts")
    for col in ("contract", "kind", "provider", "GPU-hours used", "paid", "wasted", "overage"):
        t.add_column(col, justify="left" if col in ("contract", "kind", "provider") else "right")
    for r in doc["per_contract"]:
        t.add_row(escape(r["contract"]), r["kind"], escape(r["provider"]), _m(r["used_gpu_hours"]),
                  _usd(r["paid_usd"]), _usd(r["wasted_usd"]), _usd(r["overage_usd"]))
    return t


def shadow_lines(doc: dict[str, Any]) -> list[str]:
    sp = doc["shadow_prices"]
    lines = [f"  {escape(c['cluster'])}: up to ${c['usd_per_gpu_month_max']:,.2f} per GPU-month "
             f"(mean ${c['usd_per_gpu_month_mean']:,.2f}, binding in {c['binding_periods']} periods)"
             for c in sorted(sp["capacity"], key=lambda c: -c["usd_per_gpu_month_max"]) if c["binding_periods"]]
    lines += [f"  cap {lim['class']} ≤ {lim['max_share']:.0%}"
              f"{' on ' + escape(lim['provider']) if lim['provider'] else ''}: one more point saves "
              f"${lim['saves_usd_per_point']:,.0f} (binding in {lim['binding_periods']} periods)"
              for lim in sp["concentration_caps"] if lim["binding_periods"]]
    n1 = sp["n1"]
    if n1["binding_periods"]:
        lines.append(f"  N-1 ({', '.join(n1['critical_classes'])}, {n1['n1_fraction']:.0%}): one more point costs "
                     f"${n1['costs_usd_per_point']:,.0f} (binding in {n1['binding_periods']} periods)")
    return lines or ["  none: no capacity, cap or N-1 row binds"]


def print_plan(doc: dict[str, Any]) -> None:
    c = doc["cost"]
    out.print(f"plan {escape(doc['scenario'])} {doc['start']}..{doc['end']}: {len(doc['periods'])} periods, "
              f"HiGHS {doc['status']} (gap {doc['gap']:.1e}), {doc['variables']:,} variables, "
              f"{doc['constraints']:,} constraints, build {doc['build_s']:.2f} s, solve {doc['solve_s']:.2f} s")
    out.print(f"objective {_usd(doc['objective_usd'])} = reserved {_usd(c['reserved_usd'])} + commitments drawn "
              f"{_usd(c['commitment_drawn_usd'])} + shortfall {_usd(c['commitment_shortfall_usd'])} + on demand "
              f"{_usd(c['on_demand_usd'])} + list {_usd(c['list_price_usd'])} + options {_usd(c['options_usd'])} + "
              f"unmet penalty {_usd(c['unmet_penalty_usd'])}")
    out.print(provider_table(doc))
    out.print(contract_table(doc))
    u = doc["unmet"]
    out.print(f"unmet demand: {_m(u['total_gpu_hours'])} reference GPU-hours "
              f"(penalty ${u['penalty_usd_per_gpu_hour']:,.0f} per GPU-hour = {_usd(u['penalty_usd'])})")
    for s in sorted(u["by_stream"], key=lambda s: -s["unmet_gpu_hours"])[:10]:
        out.print(f"  {escape(s['stream'])} ({s['kind']}): {_m(s['unmet_gpu_hours'])}")
    out.print("shadow prices:")
    for line in shadow_lines(doc):
        out.print(line)


def print_extras(doc: dict[str, Any]) -> None:
    if "baselines" in doc:
        b = doc["baselines"]
        g, s = b["greedy_list_price"], b["single_provider"]
        out.print(f"baselines: plan {_usd(b['plan_objective_usd'])}; greedy cheapest list price {_usd(g['objective_usd'])} "
                  f"(plan saves {_usd(g['saving_usd'])}); best single provider {escape(s['provider'])} "
                  f"{_usd(s['objective_usd'])} (plan saves {_usd(s['saving_usd'])})")
    if doc.get("what_if"):
        t = Table(title="what-if vs the base plan")
        for col in ("what-if", "status", "objective", "Δ cost", "Δ unmet GPU-h", "Δ wasted"):
            t.add_column(col, justify="left" if col in ("what-if", "status") else "right")
        for w in doc["what_if"]:
            t.add_row(escape(w["spec"]), w["status"], _usd(w["objective_usd"]), f"{w['delta_usd']:+,.0f}",
                      f"{w['delta_unmet_gpu_hours']:+,.0f}", f"{w['delta_wasted_usd']:+,.0f}")
        out.print(t)
    if "simulation_check" in doc:
        sc = doc["simulation_check"]
        t = Table(title=f"simulated vs planned GPU-hours, {sc['start']}..{sc['end']} (seed {sc['seed']})")
        for col in ("provider", "planned", "simulated", "difference", "planned as simulated", "difference "):
            t.add_column(col, justify="left" if col == "provider" else "right")
        for name, r in list(sc["per_provider"].items()) + [("total", sc["total"])]:
            t.add_row(escape(name), _m(r["planned_gpu_hours"]), _m(r["simulated_gpu_hours"]),
                      f"{r['relative_difference']:+.1%}", _m(r["planned_as_simulated_gpu_hours"]),
                      f"{r['relative_difference_as_simulated']:+.1%}")
        out.print(t)


def write_outputs(doc: dict[str, Any], json_out: str | None, report: str | None) -> None:
    if json_out:
        if json_out == "-":
            emit_json(doc)
        else:
            Path(json_out).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    if report:
        from ..report.plan_html import plan_report
        Path(report).write_text(plan_report(doc, f"gpufleet plan: {doc['scenario']}"), encoding="utf-8")


def plan(
    scenario: Annotated[str, typer.Argument(help="scenario YAML file")],
    start: Annotated[Optional[str], typer.Option("--from", help="first day of the plan (default: the scenario's start)")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="day after the plan (default: the scenario's end)")] = None,
    period_months: Annotated[int, typer.Option(help="calendar months per period")] = 1,
    unmet_penalty: Annotated[float, typer.Option(help="USD per reference GPU-hour of demand left unmet")] = DEFAULT_UNMET_PENALTY,
    what_if: Annotated[list[str], typer.Option("--what-if", help="variant to compare: drop:PROVIDER, delay:CLUSTER:N, demand:CLASS:FACTOR, cap:CLASS:SHARE")] = [],  # noqa: B006
    check_months: Annotated[int, typer.Option(help="simulate the plan's first N months and compare (0: skip)")] = 0,
    seed: Annotated[int, typer.Option(help="random seed of the simulation check")] = 0,
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help="compare with greedy list price and the best single provider")] = True,
    json_out: Annotated[Optional[str], typer.Option("--json", help="write the plan document here ('-': stdout)")] = None,
    report: Annotated[Optional[str], typer.Option(help="write an HTML report here")] = None,
) -> None:
    """Plan which contract and cluster carry which workload, period by period, at least cost (a linear program)."""
    p = scenario_or_exit(scenario)
    if check_months < 0:
        raise bad_input("--check-months must be 0 or more")
    pr = _problem(p, start, end, period_months, unmet_penalty)
    variants = _what_ifs(what_if, pr)
    clock = time.perf_counter
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        steps = bar.add_task("solving the plan", total=1 + baselines + len(variants) + bool(check_months))
        base = solve_problem(pr, clock=clock)
        doc = plan_doc(base, pr)
        bar.advance(steps)
        if baselines:
            bar.update(steps, description="solving the baselines")
            doc["baselines"] = baselines_doc(base, pr, clock)
            bar.advance(steps)
        if variants:
            doc["what_if"] = []
            for w in variants:
                bar.update(steps, description=f"what-if {escape(w.spec)}")
                doc["what_if"].append(_variant(w, pr, base, clock))
                bar.advance(steps)
        if check_months:
            bar.update(steps, description=f"simulating the first {check_months} month(s)")
            doc["simulation_check"] = simulation_check(p, base, check_months, clock, seed)
            bar.advance(steps)
    write_outputs(doc, json_out, report)
    if json_out != "-":
        print_plan(doc)
        print_extras(doc)
        if report:
            out.print(f"report written to {escape(report)}")
    if not base.optimal:
        err.print(f"[red]error[/] HiGHS stopped without proving optimality: {escape(base.status)}")
        raise typer.Exit(EXIT_FAILURE)


def _variant(w: WhatIf, pr: Problem, base: Plan, clock) -> dict[str, Any]:
    return compare(w.spec, base, solve_problem(apply_what_if(pr, w), clock=clock))
