"""Commands about input files and the catalog: validate, schema, catalog, show."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..catalog import bundled_catalog
from ..files import FileError
from ..files.loader import load_any
from ..model.job import JobSpec
from ..model.scenario import Scenario
from ..report.summary import summarize
from .common import EXIT_BAD_INPUT, emit_json, err, escape, gpus, out, scenario_or_exit

JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output (stable keys, docs/cli.md)")]


def validate(files: Annotated[list[str], typer.Argument(help="scenario or job YAML files")],
             as_json: JsonFlag = False) -> None:
    """Check scenario and job files; exit 2 with every problem (file:line:col field: message) if any."""
    results, bad = [], False
    for f in files:
        try:
            loaded = load_any(f)
            if isinstance(loaded, JobSpec):
                kind = "job"
                line = f"{loaded.kind} job {loaded.name!r}: {gpus(loaded.gpu_count)} of {', '.join(loaded.gpu_types)}"
            else:
                kind = "scenario"
                peak = sum(c.max_domains * c.usable_gpus_per_domain for c in loaded.clusters.values())
                line = (f"{len(loaded.clusters)} clusters, {peak:,} GPUs at peak, {len(loaded.contracts)} contracts, "
                        f"{len(loaded.workloads)} workloads")
            results.append({"file": f, "ok": True, "kind": kind, "summary": line, "problems": []})
            if not as_json:
                out.print(f"[green]ok[/] {escape(f)}: {kind}, {escape(line)}")
        except FileError as e:
            bad = True
            results.append({"file": f, "ok": False, "problems": [p.to_json() for p in e.problems]})
            if not as_json:
                for p in e.problems:
                    err.print(f"[red]error[/] {escape(str(p))}")
    if as_json:
        emit_json({"ok": not bad, "files": results})
    if bad:
        raise typer.Exit(EXIT_BAD_INPUT)


def schema(kind: Annotated[str, typer.Argument(help="scenario or job")]) -> None:
    """Print the JSON Schema of a scenario or job file (for editors)."""
    models = {"scenario": Scenario, "job": JobSpec}
    if kind not in models:
        err.print(f"[red]error[/] unknown schema {kind!r}; expected one of: scenario, job")
        raise typer.Exit(EXIT_BAD_INPUT)
    doc = models[kind].model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    print(json.dumps(doc, indent=2))


def catalog(gpu: Annotated[Optional[str], typer.Option(help="only this GPU type")] = None,
            provider: Annotated[Optional[str], typer.Option(help="only this provider")] = None,
            as_json: JsonFlag = False) -> None:
    """List bundled GPU types and cloud offerings with prices and NVLink domain sizes."""
    cat = bundled_catalog()
    if gpu is not None and cat.gpu(gpu) is None:
        err.print(f"[red]error[/] unknown GPU type {gpu!r}; expected one of {', '.join(cat.gpus)}")
        raise typer.Exit(EXIT_BAD_INPUT)
    gpus = [g for g in cat.gpus.values() if gpu is None or g.name == cat.canonical(gpu)]
    offers = cat.find(gpu, provider)
    if as_json:
        emit_json({"gpus": [g.model_dump() for g in gpus],
                   "offerings": [{k: getattr(o, k) for k in o.__slots__} for o in offers]})
        return
    t = Table(title="GPU types (dense TFLOPs)")
    for col in ("name", "vendor", "HBM GB", "HBM TB/s", "BF16", "FP8", "FP4", "NVLink domain", "W", "status"):
        t.add_column(col, justify="right" if col not in ("name", "vendor", "status") else "left")
    for g in gpus:
        t.add_row(g.name, g.vendor, f"{g.hbm_gb:g}", f"{g.hbm_tb_s:g}", f"{g.bf16_dense_tflops:g}",
                  _n(g.fp8_dense_tflops), _n(g.fp4_dense_tflops), str(g.nvlink_domain_gpus), _n(g.power_w), g.status)
    out.print(t)
    t = Table(title="Offerings (list prices; '-' = no public price)")
    for col in ("id", "provider", "region", "gpu", "instance", "GPUs", "domain", "pricing", "$/GPU-h"):
        t.add_column(col)
    for o in offers:
        t.add_row(o.id, o.provider, o.region, o.gpu, o.instance_type, str(o.gpus_per_instance),
                  str(o.nvlink_domain_gpus), o.pricing, _n(o.price_per_gpu_hour))
    out.print(t)


def _n(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def show(scenario: Annotated[str, typer.Argument(help="scenario YAML file")], as_json: JsonFlag = False,
         every: Annotated[int, typer.Option(min=0, max=120, help="months per row (default: 1, or 3 past 2 years)")] = 0
         ) -> None:
    """Capacity per provider per month, contracts and their totals, and the workloads of a scenario."""
    s = summarize(scenario_or_exit(scenario))
    if as_json:
        emit_json(s)
        return
    print_summary(s, every)


def print_summary(s: dict, every: int = 0) -> None:
    cap = s["capacity"]
    months = cap["months"]
    step = every or (1 if len(months) <= 24 else 3)
    provs = list(cap["gpus_by_provider"])
    t = Table(title=f"{s['scenario']}: GPUs by provider ({s['start']} .. {s['end']})")
    t.add_column("month")
    for p in provs:
        t.add_column(p, justify="right")
    t.add_column("total", justify="right", style="bold")
    for i in range(0, len(months), step):
        t.add_row(months[i], *[f"{cap['gpus_by_provider'][p][i]:,}" for p in provs], f"{cap['total_gpus'][i]:,}")
    out.print(t)
    t = Table(title="Contracts")
    for col in ("name", "kind", "provider", "term", "committed $", "terms"):
        t.add_column(col, justify="right" if col == "committed $" else "left")
    for c in s["contracts"]:
        if c["kind"] == "spend_commitment":
            terms = f"${c['price_per_gpu_hour']:g}/GPU-h, ≈{c['avg_gpus_covered']:,.0f} GPUs busy on average"
        elif c["kind"] == "reserved_capacity":
            terms = f"{c['gpus']:,} GPUs at ${c['price_per_gpu_hour']:g}/GPU-h"
        else:
            terms = "list price" + (f" -{c['discount']:.0%}" if c["discount"] else "")
        t.add_row(c["name"], c["kind"], c["provider"], f"{c['start']} .. {c['end']}",
                  f"{c['committed_usd']:,.0f}", terms)
    out.print(t)
    out.print(f"committed in total: [bold]${s['contract_totals']['committed_usd']:,.0f}[/]")
    t = Table(title="Workloads")
    for col in ("name", "kind", "team", "priority", "size"):
        t.add_column(col)
    for w in s["workloads"]:
        if w["kind"] == "training":
            size = f"{w['gpus']:,} GPUs (tp {w['tp']}) × {w['runs']} run(s), {w['work_gpu_hours']:,.0f} GPU-h each"
        elif w["kind"] == "inference":
            size = f"peak {w['peak_replicas']:,} replicas × {w['gpus_per_replica']} GPUs in {len(w['regions'])} regions"
        else:
            size = f"{w['jobs_per_day']:g} jobs/day × {w['gpus']} GPU × {w['duration_s']:g} s"
        t.add_row(w["name"], w["kind"], w["team"], str(w["priority"]), size)
    out.print(t)
