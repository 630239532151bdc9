"""`gpufleet simulate`: replay the scenario's work (and optionally a real trace) with failures."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..model.scenario import Portfolio
from ..placement.profiles import get_profile
from ..placement.state import to_seconds
from ..planning.guidance import REPLAN, Replanner
from ..report.findings import findings
from ..report.units import WaitUnit
from ..scheduling.queue import DEFAULT_QUEUE, QUEUES
from ..scheduling.translate import TraceMapping, demand_service, trace_stream
from ..simulation.failures import OutageError, parse_outage
from ..simulation.simulator import SimOptions, Simulator
from .common import bad_input, emit_json, err, escape, out, scenario_or_exit


def _when(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise bad_input(f"{option}: expected an ISO date or date-time such as 2026-06-01, found {value!r}") from None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def _csv(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


def build_simulator(p: Portfolio, *, profile: str | None, queue: str, seed: int, until: str | None,
                    fail: list[str], random_failures: bool, workloads: bool = True,
                    replan: str | None = None) -> Simulator:
    try:
        prof = get_profile(profile or p.policies.default_profile)
    except KeyError as e:
        raise bad_input(f"--profile: {e.args[0]}") from None
    if replan is None:   # a profile that follows a plan gets one, re-made monthly
        replan = "monthly" if {"plan", "shadow"} & set(prof.weights) else "off"
    if replan not in REPLAN:
        raise bad_input(f"--replan: expected one of {', '.join(REPLAN)}, found {replan!r}")
    if queue not in QUEUES:
        raise bad_input(f"--queue: unknown discipline {queue!r}; expected one of {', '.join(QUEUES)}")
    try:
        outages = [parse_outage(f, p) for f in fail]
    except OutageError as e:
        raise bad_input(f"--fail {e}") from None
    until_s = _when(until, "--until")
    if until_s is not None and until_s <= to_seconds(p.start):
        raise bad_input(f"--until {until} is not after the scenario's start {p.start}")
    planner = None if replan == "off" else Replanner(p, until_s if until_s is not None else to_seconds(p.end),
                                                      replan, clock=time.perf_counter)
    opts = SimOptions(queue=queue, until_s=until_s, random_failures=random_failures, outages=outages,
                      scenario_workloads=workloads, planner=planner)
    return Simulator(p, prof, opts, random.Random(seed))


def add_trace(sim: Simulator, p: Portfolio, file: str, fmt: str, *, gpus: str | None, providers: str | None,
              regions: str | None, queue_as_region: bool, time_scale: float, start: str | None,
              replica_gpus: int, team: str | None = None) -> None:
    from ..simulation.traces.base import DemandTrace, TraceError
    from ..simulation.traces.registry import load_trace

    try:
        trace = load_trace(file, fmt)
    except TraceError as e:
        raise bad_input(str(e)) from None
    types = _csv(gpus)
    known = {c.gpu.name for c in p.clusters.values()}
    if types and not set(types) <= known:
        raise bad_input(f"--trace-gpus: {', '.join(sorted(set(types) - known))} not in this scenario "
                   f"(it has {', '.join(sorted(known))})")
    if time_scale <= 0:
        raise bad_input("--time-scale must be positive")
    start_s = _when(start, "--trace-start") or sim.t0
    speeds = {t: 1.0 for t in (types or sorted(known))}
    queues = {j.queue for j in trace.jobs} if not isinstance(trace, DemandTrace) else set()
    _check_trace_team(p, team, queues)
    sim.trace_reports.append(trace.report.to_json())
    if isinstance(trace, DemandTrace):
        area = (_csv(regions) or [None])[0]
        if area is None:
            raise bad_input("a demand trace needs --trace-regions naming the region or area its replicas serve")
        sim.add_service(demand_service(trace, f"trace-{Path(file).stem}", area, replica_gpus, speeds,
                                       start_s, time_scale, team=team or "default"))
        return
    m = TraceMapping(gpu_types=speeds if types else None, team=team, providers=frozenset(_csv(providers) or []) or None,
                     regions=frozenset(_csv(regions) or []) or None, queue_as_region=queue_as_region,
                     time_scale=time_scale, start_s=start_s)
    sim.add_stream(trace_stream(trace.jobs, p, m))


def _check_trace_team(p: Portfolio, team: str | None, queues: set[str | None]) -> None:
    """Refuse a mapping that leaves the trace's work no quota: every such job would fail."""
    if not p.teams:
        return  # no teams, no quotas
    if team is not None:
        if team not in p.teams:
            raise bad_input(f"--trace-team: no team {team!r} in this scenario (it has {', '.join(sorted(p.teams))})")
        t = p.teams[team]
        if t.quota_gpus == 0 and t.cohort is None:
            raise bad_input(f"--trace-team: team {team!r} has a quota of 0 GPUs and no cohort to borrow from: "
                            "the trace's jobs could never run")
        return
    orphans = {q for q in queues if q not in p.teams}
    if (orphans or not queues) and "default" not in p.teams:
        named = sorted(q for q in orphans if q)
        which = f"jobs of queue(s) {', '.join(named[:5])} name no team and" if named else "jobs name no team and"
        raise bad_input(f"the trace's {which} would run as team 'default', which this scenario does not "
                        f"declare (its teams: {', '.join(sorted(p.teams))}); pass --trace-team TEAM")


def run_with_progress(sim: Simulator, show: bool) -> dict:
    if not show:
        return sim.run(time.perf_counter)
    with Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("sim", total=1.0)
        sim.opt.progress = lambda f: bar.update(task, completed=f)
        return sim.run(time.perf_counter)


def summary_table(results: list[dict], wait: WaitUnit | None = None) -> Table:
    """The runs side by side; waits in one unit (`wait`, else the one these runs call for)."""
    w = wait or WaitUnit(results)
    t = Table(title="simulation")
    t.add_column("metric")
    for r in results:
        t.add_column(f"{r['profile']} / {r['queue']}", justify="right")
    rows = [("jobs (finished / failed / queued / running)",
             lambda r: f"{r['jobs']:,} ({r['finished']:,} / {r['failed']:,} / {r['queued']:,} / {r['running']:,})"),
            (f"wait avg / p50 / p99 ({w.name})", lambda r: f"{w.number(r['avg_wait_s'])} / {w.number(r['p50_wait_s'])} / "
                                                           f"{w.number(r['p99_wait_s'])}"),
            ("job completion time avg (h)", lambda r: f"{r['avg_jct_s'] / 3600:.2f}"),
            ("utilization / goodput", lambda r: f"{r['utilization']:.1%} / {r['goodput']:.1%}"),
            ("cost (USD)", lambda r: f"{r['cost_usd']:,.0f}"),
            ("committed dollars wasted (USD)", lambda r: f"{r['commitment_wasted_usd'] + r['reserved_wasted_usd']:,.0f}"),
            ("on-demand / list-price spend (USD)", lambda r: f"{r['on_demand_usd']:,.0f}"),
            ("lost GPU-hours / restarts", lambda r: f"{r['lost_gpu_hours']:,.0f} / {r['restarts']:,}"),
            ("inference demand served", lambda r: f"{r['inference_slo_attainment']:.2%}"),
            ("events / wall (s)", lambda r: f"{r['events']:,} / {r['wall_s']:.1f}")]
    for name, fmt in rows:
        t.add_row(name, *[fmt(r) for r in results])
    return t


def write_outputs(results: list[dict], p: Portfolio, json_out: str | None, report: str | None,
                  notes: list[str] | None = None, extra: dict | None = None) -> None:
    """The JSON document (one run, or `{"runs": [...]}` plus `extra`'s keys) and the HTML report."""
    if json_out:
        doc = results[0] if len(results) == 1 and not extra else {"runs": results, **(extra or {})}
        if json_out == "-":
            emit_json(doc)
        else:
            Path(json_out).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    if report:
        from ..report.html import commitment_terms, simulation_report
        html = simulation_report(results, f"gpufleet simulation: {p.scenario.name}", notes, commitment_terms(p))
        Path(report).write_text(html, encoding="utf-8")


def simulate(
    scenario: Annotated[str, typer.Argument(help="scenario YAML file")],
    trace: Annotated[Optional[str], typer.Option(help="a trace file to replay on the portfolio")] = None,
    trace_format: Annotated[str, typer.Option(help="philly, gavel, alibaba, azure-llm, mooncake, csv")] = "csv",
    trace_gpus: Annotated[Optional[str], typer.Option(help="GPU types the trace's jobs may use (comma list)")] = None,
    trace_providers: Annotated[Optional[str], typer.Option(help="providers the trace's jobs may use")] = None,
    trace_regions: Annotated[Optional[str], typer.Option(help="regions or areas the trace's jobs may use")] = None,
    trace_queue_as_region: Annotated[bool, typer.Option(help="the trace's queue (e.g. a Philly VC) names the region")] = False,
    time_scale: Annotated[float, typer.Option(help="compress the trace's arrivals by this factor")] = 1.0,
    trace_start: Annotated[Optional[str], typer.Option(help="when the trace's first job lands (default: scenario start)")] = None,
    replica_gpus: Annotated[int, typer.Option(min=1, help="GPUs per replica for a demand trace")] = 8,
    trace_team: Annotated[Optional[str], typer.Option(help="team the trace's work runs as (default: its queue if "
                                                           "that names a team, else 'default')")] = None,
    no_workloads: Annotated[bool, typer.Option("--no-workloads", help="leave out the scenario's own workloads")] = False,
    policy: Annotated[Optional[str], typer.Option("--profile", "--policy", metavar="PROFILE",
                                                  help="placement profile (default: the scenario's)")] = None,
    replan: Annotated[Optional[str], typer.Option(help="re-plan with the LP: off, once, monthly, quarterly "
                                                       "(default: monthly for the plan profile, else off)")] = None,
    queue: Annotated[str, typer.Option(help="queue discipline: priority (best effort), fifo, sjf, backfill")] = DEFAULT_QUEUE,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same result)")] = 0,
    until: Annotated[Optional[str], typer.Option(help="stop at this date (default: the scenario's end)")] = None,
    fail: Annotated[list[str], typer.Option(help="scheduled outage TARGET@START/DURATION, e.g. aws@2026-06-01T00:00/48h")] = [],  # noqa: B006
    no_random_failures: Annotated[bool, typer.Option("--no-random-failures", help="only scheduled outages")] = False,
    json_out: Annotated[Optional[str], typer.Option("--json", help="write the result document here ('-': stdout)")] = None,
    report: Annotated[Optional[str], typer.Option(help="write an HTML report here")] = None,
) -> None:
    """Replay the scenario's work (and a trace) on the portfolio with failures; print and save the metrics."""
    p = scenario_or_exit(scenario)
    sim = build_simulator(p, profile=policy, queue=queue, seed=seed, until=until, fail=fail,
                          random_failures=not no_random_failures, workloads=not no_workloads, replan=replan)
    if trace:
        add_trace(sim, p, trace, trace_format, gpus=trace_gpus, providers=trace_providers, regions=trace_regions,
                  queue_as_region=trace_queue_as_region, time_scale=time_scale, start=trace_start,
                  replica_gpus=replica_gpus, team=trace_team)
    result = run_with_progress(sim, show=json_out != "-")
    result["findings"] = findings(result)
    write_outputs([result], p, json_out, report, result["findings"])
    if json_out != "-":
        out.print(summary_table([result]))
        for f in result["findings"]:
            out.print(f"- {escape(f)}")
        for tr in result["trace_import"]:
            out.print(f"trace {escape(tr['file'])}: {tr['rows_read']:,} rows read, {tr['rows_used']:,} used, "
                      f"{tr['rows_skipped']:,} skipped {escape(str(tr['skipped']))}")
        if report:
            out.print(f"report written to {escape(report)}")
