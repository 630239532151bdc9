"""`gpufleet demo`: the bundled frontier-lab portfolio over its ramp, with a provider outage, under two profiles."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, wait
from multiprocessing import Manager
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperCommand

from ..files import load_scenario
from ..report.findings import findings
from ..report.units import WaitUnit
from .common import err, example_path, out, scenario_or_exit
from .demo_choice import CHOICE, CHOICE_PROFILES, choice_doc, choice_note, choice_table, lp_bound, run_choice
from .simulate import build_simulator, run_with_progress, summary_table, write_outputs

DEMO_UNTIL = "2027-01-01"                 # the AWS UltraServer ramp completes by the end of 2026
DEMO_OUTAGE = "aws@2026-09-01T00:00/48h"  # a whole provider lost for two days at full load
PROFILES = ("cost", "list-price")


def _one(args: tuple[str, str, int, int, Any]) -> dict:
    file, profile, seed, idx, seen = args
    last = [0.0]

    def progress(f: float) -> None:   # a few dozen updates per run: the dict is another process's
        if f - last[0] >= 0.02 or f >= 1.0:
            last[0] = f
            seen[idx] = f
    if file == CHOICE:
        return run_choice(profile, seed, progress)
    p = load_scenario(file)
    sim = build_simulator(p, profile=profile, queue="priority", seed=seed, until=DEMO_UNTIL, fail=[DEMO_OUTAGE],
                          random_failures=True)
    sim.opt.progress = progress
    return run_with_progress(sim, show=False)


def _run_all(jobs: list[tuple[str, str, int]], console: Any) -> list[dict]:
    """The runs two at a time, each with its own progress bar (workers write their share done into a
    dict the parent reads)."""
    labels = [f"{file.removesuffix('.yaml').rsplit('/', 1)[-1]} · {prof}" for file, prof, _ in jobs]
    with Manager() as mgr:
        seen = mgr.dict()
        with ProcessPoolExecutor(max_workers=2) as pool, \
                Progress(TextColumn("{task.description:<28}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                         TimeElapsedColumn(), console=console, transient=True) as bar:
            tasks = [bar.add_task(label, total=1.0) for label in labels]
            futures = [pool.submit(_one, (*job, i, seen)) for i, job in enumerate(jobs)]
            while not all(f.done() for f in futures):
                wait(futures, timeout=0.25)
                for i, t in enumerate(tasks):
                    bar.update(t, completed=1.0 if futures[i].done() else seen.get(i, 0.0))
            return [f.result() for f in futures]


def _outage(r: dict) -> dict:
    hits = [f for f in r["timeseries"]["failures"] if f["kind"] == "provider outage"]
    return {"jobs": sum(f["jobs"] for f in hits)}


def _notes(cost: dict, base: dict, w: WaitUnit) -> list[str]:
    saved = base["cost_usd"] - cost["cost_usd"]
    waste_c = cost["commitment_wasted_usd"] + cost["reserved_wasted_usd"]
    waste_b = base["commitment_wasted_usd"] + base["reserved_wasted_usd"]
    return [
        f"Cost: placing by effective cost under the contracts spends ${cost['cost_usd'] / 1e9:,.2f}B over the ramp, "
        f"${saved / 1e9:,.2f}B {'less' if saved >= 0 else 'more'} than choosing the cheapest list price "
        f"(${base['cost_usd'] / 1e9:,.2f}B), because committed capacity that would idle is nearly free.",
        f"Waste: committed dollars paid but not used come to ${waste_c / 1e9:,.2f}B with the cost profile and "
        f"${waste_b / 1e9:,.2f}B with the list-price baseline; on-demand and list-price spend is "
        f"${cost['on_demand_usd'] / 1e6:,.1f}M vs ${base['on_demand_usd'] / 1e6:,.1f}M.",
        f"Waits: jobs waited {w(cost['avg_wait_s'])} on average (p99 {w(cost['p99_wait_s'])}) "
        f"with the cost profile, {w(base['avg_wait_s'])} (p99 {w(base['p99_wait_s'])}) "
        "with the baseline.",
        f"Outage ({DEMO_OUTAGE}): {_outage(cost)['jobs']:,} running jobs and replicas were interrupted and "
        f"requeued on the other providers; {cost['lost_gpu_hours']:,.0f} GPU-hours of work were lost in all "
        f"(outage and random failures, back to the last checkpoints); inference demand served: "
        f"{cost['inference_slo_attainment']:.2%}.",
    ]


class DemoCommand(TyperCommand):
    """`demo`'s `--json` may be given without a file (last, or before another option): the document then
    goes to stdout, as with `--json -`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        given = list(args)
        fixed: list[str] = []
        for i, a in enumerate(given):
            fixed.append(a)
            nxt = given[i + 1] if i + 1 < len(given) else None
            if a == "--json" and (nxt is None or (nxt.startswith("-") and nxt != "-")):
                fixed.append("-")
        return super().parse_args(ctx, fixed)


def demo(report: Annotated[str, typer.Option(help="where to write the HTML report")] = "gpufleet-demo.html",
         json_out: Annotated[Optional[str], typer.Option(
             "--json", metavar="[FILE]",
             help="write the result document(s) to this file, or to stdout when no file (or -) is given "
                  "(the narration, table and report then go to stderr)")] = None,
         seed: Annotated[int, typer.Option(help="random seed")] = 0,
         live: Annotated[bool, typer.Option("--live", help="run the live failover demo instead: two local "
                         "Slurm clusters, a real `gpufleet serve`, provider A's Slurm stopped under a "
                         "training gang (docs/demo-live.md)")] = False,
         workdir: Annotated[Optional[str], typer.Option(help="--live: work in this directory (default: a "
                            "new temporary one); it must be new, empty or an earlier --workdir of the demo "
                            "(exit 2 otherwise)")] = None,
         keep: Annotated[bool, typer.Option(help="--live: keep the work dir (logs, database, checkpoints)")]
         = False,
         engine: Annotated[str, typer.Option(help="--live: what runs provider A: `slurm` (two local Slurm "
                           "clusters) or `ray` (a local multi-node Ray cluster; provider B then runs jobs as "
                           "local processes; needs gpufleet[ray], exit 3 without it)")] = "slurm") -> None:
    """Simulate the bundled frontier-lab portfolio through its ramp with one provider outage, under the
    `cost` profile and the `list-price` baseline, and say what to look at. With --live: fail a training
    gang over from a real local Slurm (or, with --engine ray, Ray) provider to another behind a real
    `gpufleet serve` (exit 0 it worked, 1 it did not, 2 bad --workdir or engine, 3 Slurm/Ray missing)."""
    if live:
        from .demo_live import run_live
        raise typer.Exit(run_live(workdir, keep, json_out, engine))
    file = example_path("frontier-lab.yaml")
    p = scenario_or_exit(file)
    say = err if json_out == "-" else out  # stdout then holds the JSON document alone
    say.print(f"gpufleet demo: [bold]{p.scenario.name}[/], {p.start} .. {DEMO_UNTIL}, outage {DEMO_OUTAGE}, "
              f"profiles {' vs '.join(PROFILES)}; then {CHOICE.removesuffix('.yaml')}, profiles "
              f"{' vs '.join(CHOICE_PROFILES)} against the LP bound (four runs, two at a time)...")
    jobs = [(file, prof, seed) for prof in PROFILES] + [(CHOICE, prof, seed) for prof in CHOICE_PROFILES]
    done = _run_all(jobs, say)
    results, choice = done[:len(PROFILES)], done[len(PROFILES):]
    lp = lp_bound()
    wait = WaitUnit(done)   # one unit for every wait the demo shows
    say.print(summary_table(results, wait))
    say.print(choice_table(choice, lp, wait))
    notes = _notes(*results, wait) + [f"Finding ({results[0]['profile']} profile): {f}" for f in findings(results[0])] \
        + [choice_note(choice, lp)]
    for n in notes:
        say.print(f"- {n}")
    write_outputs(results, p, json_out, report, notes, extra={"choice": choice_doc(choice, lp)})
    say.print(f"report written to [bold]{report}[/]")
