"""The demo's second part: on `posttrain-crunch.yaml`, the `plan` profile against the `cost` profile, each
divided by the LP bound on the same window: the scenario where following the planner changes the bill."""

from __future__ import annotations

from typing import Callable

from rich.table import Table

from ..files import load_scenario
from ..planning import build_problem, solve_problem
from ..planning.accounts import bound_usd
from ..planning.periods import add_months
from ..report.units import WaitUnit
from .common import example_path
from .simulate import build_simulator, run_with_progress

CHOICE = "posttrain-crunch.yaml"
CHOICE_MONTHS = 3
CHOICE_PROFILES = ("plan", "cost")


def run_choice(profile: str, seed: int, progress: Callable[[float], None] | None = None) -> dict:
    p = load_scenario(example_path(CHOICE))
    until = add_months(p.start, CHOICE_MONTHS).isoformat()
    sim = build_simulator(p, profile=profile, queue="priority", seed=seed, until=until, fail=[],
                          random_failures=False)
    sim.opt.progress = progress
    return run_with_progress(sim, show=False)


def lp_bound() -> float:
    p = load_scenario(example_path(CHOICE))
    pr = build_problem(p, p.start, add_months(p.start, CHOICE_MONTHS))
    return bound_usd(solve_problem(pr), pr)


def choice_doc(runs: list[dict], lp_usd: float) -> dict:
    """The `choice` key of the demo's JSON document."""
    return {"scenario": runs[0]["scenario"], "months": CHOICE_MONTHS, "lp_usd": round(lp_usd, 2),
            "ratio_to_lp": {r["profile"]: round(r["cost_usd"] / lp_usd, 4) for r in runs}, "runs": runs}


def _gang_on_demand(r: dict) -> float:
    return r["timeseries"]["contract_billed_usd"]["cw-od"][-1]


def choice_table(runs: list[dict], lp_usd: float, wait: WaitUnit) -> Table:
    t = Table(title=f"{runs[0]['scenario']}: {CHOICE_MONTHS} months, against the LP bound (${lp_usd / 1e6:,.2f}M)")
    for col in ("profile", "cost", "× LP bound", "dear on-demand (gang)", f"avg wait ({wait.name})"):
        t.add_column(col, justify="left" if col == "profile" else "right")
    for r in runs:
        t.add_row(r["profile"], f"${r['cost_usd'] / 1e6:,.2f}M", f"{r['cost_usd'] / lp_usd:.3f}",
                  f"${_gang_on_demand(r) / 1e6:,.2f}M", wait.number(r["avg_wait_s"]))
    return t


def choice_note(runs: list[dict], lp_usd: float) -> str:
    by = {r["profile"]: r for r in runs}
    plan, cost = by["plan"], by["cost"]
    return (f"Plan: on {plan['scenario']} (1,024 reserved H100 GPUs; batch arrives first, a 512-GPU post-training "
            f"gang two days later) following the planner costs ${plan['cost_usd'] / 1e6:,.2f}M over "
            f"{CHOICE_MONTHS} months, {plan['cost_usd'] / lp_usd:.3f}x the LP bound; placing each job by its own "
            f"marginal cost costs ${cost['cost_usd'] / 1e6:,.2f}M ({cost['cost_usd'] / lp_usd:.3f}x): it gives the "
            f"reserved nodes to the batch that came first and runs the gang on on-demand capacity "
            f"(${_gang_on_demand(cost) / 1e6:,.2f}M). The plan holds room for the gang and sends overflow batch to "
            "the cheaper pool the gang cannot use.")
