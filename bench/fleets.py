"""Synthetic portfolios and request streams for benchmarks, sized like the fleets gpufleet is built for."""

from __future__ import annotations

import itertools
import math

import numpy as np

from gpufleet.catalog import bundled_catalog
from gpufleet.model.checks import build_portfolio
from gpufleet.model.scenario import Portfolio, Scenario
from gpufleet.placement.request import Request

PROVIDERS = [("aws", "us-east-1"), ("azure", "eastus"), ("oci", "us-ashburn-1"), ("gcp", "us-central1"),
             ("coreweave", "us-east-2"), ("lambda", "us-west-1")]


def big_portfolio(nvl72_clusters: int = 12, nvl72_domains: int = 600, hgx_clusters: int = 12,
                  hgx_nodes: int = 1000) -> Portfolio:
    """>= 500,000 GPUs by default: 12 x 600 NVL72 racks (518,400 GPUs) + 12 x 1,000 HGX nodes (96,000 GPUs)."""
    clusters = []
    for i in range(nvl72_clusters):
        prov, region = PROVIDERS[i % len(PROVIDERS)]
        clusters.append({"name": f"{prov}-nvl72-{i}", "provider": prov, "region": region,
                         "gpu": "GB200" if i % 2 == 0 else "GB300", "domains": nvl72_domains,
                         "price_per_gpu_hour": 8.0 + i % 5})
    for i in range(hgx_clusters):
        prov, region = PROVIDERS[i % len(PROVIDERS)]
        clusters.append({"name": f"{prov}-hgx-{i}", "provider": prov, "region": region,
                         "gpu": ["H100", "H200", "B200"][i % 3], "domains": hgx_nodes,
                         "price_per_gpu_hour": 3.0 + i % 7})
    contracts = [{"name": f"{p}-commit", "kind": "spend_commitment", "provider": p,
                  "clusters": [c["name"] for c in clusters if c["provider"] == p],
                  "start": "2026-01-01", "end": "2033-01-01", "commitment_usd": 5e9, "price_per_gpu_hour": 3.5}
                 for p, _ in PROVIDERS[:3]]
    teams = [{"name": t, "quota_gpus": 200_000, "cohort": "lab"} for t in ("pretrain", "serving", "research")]
    doc = {"name": "bench", "start": "2026-01-01", "end": "2033-01-01", "clusters": clusters,
           "contracts": contracts, "teams": teams,
           "policies": {"concentration_limits": [{"workload_class": "inference", "max_share": 0.5}]}}
    return build_portfolio(Scenario.model_validate(doc), bundled_catalog())


SMALL_TYPES = {"H100": 1.0, "H200": 1.3, "B200": 2.2}  # 1-64 GPU jobs run on 8-GPU HGX nodes
BIG_TYPES = {"GB200": 1.0, "GB300": 1.15}


def request_stream(n: int, seed: int, mean_gpus_busy: float, span_s: float | None = None):
    """Yield (arrival_s, duration_s, Request): sizes drawn like real traces (Philly: most jobs 1 GPU, a
    tail of multi-node gangs) plus NVL72 gangs up to 16,416 GPUs; arrivals Poisson at the rate that keeps
    `mean_gpus_busy` GPUs busy on average."""
    sizes = [(1, 1, 0.86), (2, 2, 0.02), (4, 4, 0.025), (8, 8, 0.045), (16, 8, 0.015), (32, 8, 0.008),
             (64, 8, 0.004), (72, 72, 0.012), (288, 72, 0.006), (1152, 72, 0.003), (4608, 72, 0.0012),
             (16416, 72, 0.0003)]
    weights = [w for *_, w in sizes]
    cum = list(itertools.accumulate(weights))
    mean_gpus = sum(g * w for g, _, w in sizes) / sum(weights)
    median = 3600.0
    mean_duration = math.exp(math.log(median) + 1.5 ** 2 / 2)  # lognormal, median 1 h
    rate = mean_gpus_busy / (mean_gpus * mean_duration)
    if span_s is not None:  # n jobs over span_s: stretch durations to keep the same load
        rate = n / span_s
        median *= mean_gpus_busy / (rate * mean_gpus * mean_duration)
    kinds = ["batch", "training", "inference"]
    teams = ["research", "pretrain", "serving"]
    # Draw in chunks with NumPy (seeded): the harness should cost little next to what it measures.
    gen = np.random.default_rng(seed)
    t, i, chunk = 0.0, 0, 65_536
    size_gpus = np.array([g for g, _, _ in sizes])
    size_group = np.array([g for _, g, _ in sizes])
    while i < n:
        m = min(chunk, n - i)
        gaps = gen.exponential(1.0 / rate, m)
        which = np.searchsorted(np.array(cum) / cum[-1], gen.random(m), side="right")
        durations = np.minimum(30 * 86400.0, gen.lognormal(math.log(median), 1.5, m))
        u1, u2 = gen.random(m), gen.random(m)
        for gap, w, duration, a, b in zip(gaps.tolist(), which.tolist(), durations.tolist(), u1.tolist(), u2.tolist()):
            t += gap
            gpus, group = int(size_gpus[w]), int(size_group[w])
            k = 0 if gpus <= 8 else 1
            if gpus in (8, 72) and a < 0.5:
                k = 2
            prio = 100 if b < 0.002 else (50 if k else 10)
            req = Request(id=str(i), gpus=gpus, group=group, speeds=BIG_TYPES if group == 72 else SMALL_TYPES,
                          team=teams[k], kind=kinds[k], priority=prio, preemptible=prio < 50,
                          checkpoint_interval_s=1800.0)
            i += 1
            yield t, duration, req
