"""`gpufleet sweep`: many simulations at once (seeds x what-ifs x profiles) on Ray or a process pool, and the
spread of their outcomes.

Each run is the `gpufleet simulate` of the same options in a worker: the scenario is read there from its
text, so a remote Ray cluster needs no shared files. Results are identical to the same run done alone
(apart from `wall_s` and `events_per_s`).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..files import parse_scenario
from ..report.findings import findings
from ..simulation.sweep import Run, SweepError, run_json, runs, summarize
from .common import bad_input, emit_json, err, escape, out, scenario_or_exit
from .simulate import build_simulator

Task = tuple[str, str, Run, str | None, bool]   # scenario text, its name, the run, --until, random failures


def run_one(task: Task) -> dict[str, Any]:
    """One simulation, as `gpufleet simulate SCENARIO --seed S --profile P --fail ...` gives it."""
    text, source, run, until, random_failures = task
    p = parse_scenario(text, source)
    sim = build_simulator(p, profile=run.profile, queue="priority", seed=run.seed, until=until,
                          fail=list(run.fail), random_failures=random_failures)
    result = sim.run(time.perf_counter)
    result["findings"] = findings(result)
    return result


def _on_processes(tasks: list[Task], workers: int) -> Iterator[tuple[int, dict[str, Any]]]:
    if workers == 1:   # serial: no pool at all (the baseline of bench/sweep.py)
        for i, t in enumerate(tasks):
            yield i, run_one(t)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(run_one, t): i for i, t in enumerate(tasks)}
        for f in as_completed(futures):
            yield futures[f], f.result()


def _on_ray(tasks: list[Task], workers: int, address: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    import ray
    started = not ray.is_initialized()
    if started:   # a local Ray for the sweep (sized to --workers), or the cluster at --ray
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        remote = ray.remote(run_one)
        refs = {remote.remote(t): i for i, t in enumerate(tasks)}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield refs[ready[0]], ray.get(ready[0])
    finally:
        if started:
            ray.shutdown()


def _have_ray() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def execute(tasks: list[Task], engine: str, workers: int, address: str | None,
            done: Callable[[int], None]) -> list[dict[str, Any]]:
    """Every task's result, in the tasks' order, whatever order they finish in."""
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    stream = _on_ray(tasks, workers, address) if engine == "ray" else _on_processes(tasks, workers)
    for i, r in stream:
        results[i] = r
        done(i)
    return [r for r in results if r is not None]


def _engine(engine: str, ray_address: str | None) -> str:
    if engine not in ("auto", "ray", "process"):
        raise bad_input(f"--engine: expected auto, ray or process, found {engine!r}")
    if ray_address or engine == "ray":
        if not _have_ray():
            raise bad_input("--engine ray / --ray: Ray is not installed (pip install 'gpufleet[ray]')")
        return "ray"
    return "ray" if engine == "auto" and _have_ray() else "process"


def spread_table(summary: list[dict[str, Any]]) -> Table:
    t = Table(title="sweep: P10 / P50 / P90 over the seeds")
    for col in ("what-if", "profile", "runs", "cost (USD)", "committed wasted (USD)", "wait avg (h)",
                "demand served", "lost GPU-h"):
        t.add_column(col, justify="left" if col in ("what-if", "profile") else "right")

    def three(m: dict[str, float], f: Callable[[float], str]) -> str:
        return " / ".join(f(m[k]) for k in ("p10", "p50", "p90"))
    for s in summary:
        t.add_row(escape(s["what_if"]), s["profile"], str(s["runs"]),
                  three(s["cost_usd"], lambda x: f"{x / 1e6:,.1f}M"),
                  three(s["committed_wasted_usd"], lambda x: f"{x / 1e6:,.1f}M"),
                  three(s["avg_wait_s"], lambda x: f"{x / 3600:,.1f}"),
                  three(s["demand_served"], lambda x: f"{x:.1%}"),
                  three(s["lost_gpu_hours"], lambda x: f"{x:,.0f}"))
    return t


def sweep(
    scenario: Annotated[str, typer.Argument(help="scenario YAML file")],
    seeds: Annotated[int, typer.Option(min=1, max=100_000, help="seeds per what-if and profile")] = 8,
    first_seed: Annotated[int, typer.Option(help="the first seed (then +1, +2, ...)")] = 0,
    what_if: Annotated[list[str], typer.Option("--what-if", help="besides the base case: drop:PROVIDER or "
                                               "fail:TARGET@START/DURATION (repeatable)")] = [],  # noqa: B006
    policy: Annotated[list[str], typer.Option("--policy", "--profile", metavar="PROFILE",
                                              help="placement profile(s) to compare (default: the scenario's)")] = [],  # noqa: B006
    until: Annotated[Optional[str], typer.Option(help="stop each run at this date (default: the scenario's end)")] = None,
    no_random_failures: Annotated[bool, typer.Option("--no-random-failures", help="only scheduled outages")] = False,
    workers: Annotated[int, typer.Option(min=0, max=4096, help="runs at once (0, the default: the machine's cores)")] = 0,
    engine: Annotated[str, typer.Option(help="auto (Ray when installed, else a process pool), ray, process")] = "auto",
    ray_address: Annotated[Optional[str], typer.Option("--ray", metavar="ADDRESS",
                                                       help="run on this Ray cluster (e.g. ray://head:10001)")] = None,
    json_out: Annotated[Optional[str], typer.Option("--json", help="write every run and the spread here ('-': stdout)")] = None,
    report: Annotated[Optional[str], typer.Option(help="write an HTML report of every run here")] = None,
) -> None:
    """Simulate every seed x what-if x profile in parallel, and report the spread (P10/P50/P90) per what-if."""
    p = scenario_or_exit(scenario)
    try:
        plan = runs(p, seeds, what_if, list(policy) or [None], first_seed)
    except SweepError as e:
        raise bad_input(str(e)) from None
    for r in {(r.profile, r.fail) for r in plan}:   # every option checked here, before any worker starts
        build_simulator(p, profile=r[0], queue="priority", seed=0, until=until, fail=list(r[1]),
                        random_failures=not no_random_failures)
    kind = _engine(engine, ray_address)
    k = workers or os.cpu_count() or 1
    text = Path(scenario).read_text(encoding="utf-8")
    tasks: list[Task] = [(text, scenario, r, until, not no_random_failures) for r in plan]
    t0 = time.perf_counter()
    with Progress(TextColumn(f"simulating on {kind} x{k}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("sweep", total=len(tasks))
        results = execute(tasks, kind, k, ray_address, lambda i: bar.advance(task))
    summary = summarize(list(zip(plan, results)))
    doc = {"scenario": p.scenario.name, "engine": kind, "workers": k, "wall_s": time.perf_counter() - t0,
           "summary": summary, "runs": [run_json(r) | {"result": res} for r, res in zip(plan, results)]}
    _write(doc, p, results, json_out, report)
    if json_out != "-":
        out.print(spread_table(summary))
        out.print(f"{len(results)} runs on {kind} with {k} worker(s) in {doc['wall_s']:.1f} s")


def _write(doc: dict[str, Any], p: Any, results: list[dict[str, Any]], json_out: str | None,
           report: str | None) -> None:
    if json_out == "-":
        emit_json(doc)
    elif json_out:
        Path(json_out).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    if report:
        from ..report.html import commitment_terms, simulation_report
        notes = [f"{s['what_if']} / {s['profile']}: cost P50 ${s['cost_usd']['p50']:,.0f}, demand served P50 "
                 f"{s['demand_served']['p50']:.1%}" for s in doc["summary"]]
        Path(report).write_text(simulation_report(results, f"gpufleet sweep: {p.scenario.name}", notes,
                                                  commitment_terms(p)), encoding="utf-8")
