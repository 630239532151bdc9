"""Replaying the Philly job list per virtual cluster, on the per-VC node counts the Helios simulator assumes.

Each VC becomes one cluster of 8-GPU nodes; each job may run only in its own VC. Jobs of VCs missing from
the node-count file, and jobs larger than their whole VC, are skipped and counted with the reason. Nothing
fails at random: the replay measures the queue, not the hardware. See docs/fidelity.md.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from datetime import date
from typing import Callable

from ..catalog import bundled_catalog
from ..model.checks import build_portfolio
from ..model.scenario import Portfolio, Scenario
from ..placement.state import to_seconds
from ..scheduling.translate import TraceMapping, trace_stream
from ..scheduling.work import Work as SimJob
from .simulator import SimOptions, Simulator
from .traces.base import TraceError, TraceJob
from .traces.philly import load_philly

NODE_GPUS = 8
PHILLY_GPU = {"name": "philly-gpu", "vendor": "NVIDIA", "hbm_gb": 24, "hbm_tb_s": 0.35, "bf16_dense_tflops": 12,
              "nvlink_domain_gpus": NODE_GPUS, "status": "user",
              "source": "stand-in for Philly's 2017 GPUs (P100/P40 class); figures unused by the replay"}
START = date(2017, 9, 1)  # the list's submits run 2017-09-04 .. 2017-12-22


def read_vc_nodes(path: str) -> dict[str, int]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(f"{path}: cannot be read: {e}") from None
    out = {}
    for i, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2 or not row[1].strip().isdigit():
            raise TraceError(f"{path}:{i}: expected `vc,node num` with a whole number, found {row!r}")
        out[row[0].strip()] = int(row[1])
    return out


def philly_portfolio(vc_nodes: dict[str, int]) -> Portfolio:
    clusters = [{"name": f"vc-{vc}", "provider": "philly", "region": vc, "gpu": "philly-gpu", "domains": n,
                 "price_per_gpu_hour": 1.0} for vc, n in sorted(vc_nodes.items())]
    doc = {"name": "philly-per-vc", "start": START.isoformat(), "end": "2018-06-01",
           "gpu_types": [PHILLY_GPU], "providers": [{"name": "philly", "kind": "onprem"}], "clusters": clusters}
    return build_portfolio(Scenario.model_validate(doc), bundled_catalog())


def select_jobs(jobs: list[TraceJob], vc_nodes: dict[str, int]) -> tuple[list[TraceJob], Counter]:
    kept: list[TraceJob] = []
    skipped: Counter[str] = Counter()
    for j in jobs:
        nodes = vc_nodes.get(j.queue or "")
        if nodes is None:
            skipped["VC not in the node-count file"] += 1
        elif j.gpus > nodes * NODE_GPUS:
            skipped["larger than its whole VC"] += 1
        else:
            kept.append(j)
    return kept, skipped


def philly_replay(trace_csv: str, vc_nodes_csv: str, queue: str = "fifo", seed: int = 0,
                  clock: Callable[[], float] | None = None, keep_jobs: bool = False) -> dict:
    trace = load_philly(trace_csv)
    vc_nodes = read_vc_nodes(vc_nodes_csv)
    p = philly_portfolio(vc_nodes)
    jobs, skipped = select_jobs(trace.jobs, vc_nodes)
    t0 = to_seconds(START)
    first = min((j.submit_s for j in trace.jobs), default=0.0)
    mapping = TraceMapping(gpu_types={"philly-gpu": 1.0}, queue_as_region=True, start_s=t0 + 3 * 86400 - first,
                           checkpoint_interval_s=3600.0, domain_gpus=NODE_GPUS)
    kept: list[SimJob] = []

    def stream():
        for sj in trace_stream(jobs, p, mapping):
            if keep_jobs:
                kept.append(sj)
            yield sj

    opts = SimOptions(queue=queue, start_s=t0, until_s=to_seconds(date(2018, 1, 1)), random_failures=False,
                      scenario_workloads=False, drain=True, tick_s=6 * 3600.0)
    sim = Simulator(p, "binpack", opts, random.Random(seed))
    sim.add_stream(stream())
    sim.trace_reports.append(trace.report.to_json())
    result = sim.run(clock)
    return {"import": trace.report.to_json(), "vc_nodes": vc_nodes, "skipped": dict(skipped),
            "replayed": len(jobs), "expected_gpu_s": sum(j.gpus * j.duration_s for j in jobs),
            "delivered_gpu_s": sim.metrics.run_gpu_s, "result": result, "jobs": kept}
