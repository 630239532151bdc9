"""Workloads as demand streams: what each asks per period, in reference GPU-hours, and where it may run.

A stream is one row of demand:
- a training workload: a compute budget (`work_gpu_hours × runs`) to deliver anywhere in its window, on clusters
  whose fabric holds its gang (`max_gang_gpus ≥ gpus`) and whose domains hold its tensor-parallel group; one
  gang at a time, so at most `gpus × hours` GPU-hours per period;
- an inference workload in one region or area: `replicas × gpus_per_replica × hours` per period, on clusters in
  that region or area;
- a batch workload: `jobs_per_day × gpus × duration_s / 3600` per day of the period.

Demand is in reference GPU-hours (speed 1.0); a cluster whose GPU type has speed `s` delivers `s` of them per
GPU-hour it spends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from ..catalog.loader import ALIASES
from ..model.fleet import Cluster
from ..model.workloads import BatchWorkload, InferenceWorkload, TrainingWorkload, Workload
from .periods import HOURS_PER_DAY, Periods, step_integral, window_days

KINDS = ("training", "inference", "batch")


@dataclass(frozen=True)
class Streams:
    """S demand streams over C clusters and P periods."""

    names: tuple[str, ...]           # "chat@us-east-1", "pretrain-small", "evals"
    workloads: tuple[str, ...]       # the workload each stream comes from
    kinds: tuple[str, ...]           # training | inference | batch
    speed: np.ndarray                # [S, C] speed of the cluster's GPU type; 0 where the stream may not run
    demand: np.ndarray               # [S, P] reference GPU-hours asked per period (inference, batch; 0 for training)
    budget: np.ndarray               # [S] reference GPU-hours over the window (training; 0 otherwise)
    window: np.ndarray               # [S, P] periods in which the stream may use GPUs
    rate_cap: np.ndarray             # [S, P] physical GPU-hours it can use per period (inf: no limit)

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def eligible(self) -> np.ndarray:
        return self.speed > 0

    @property
    def is_training(self) -> np.ndarray:
        return np.array([k == "training" for k in self.kinds], dtype=bool)

    def kind_mask(self, classes: frozenset[str]) -> np.ndarray:
        return np.array([k in classes for k in self.kinds], dtype=bool)

    def asked(self) -> np.ndarray:
        """[S] total reference GPU-hours each stream asks over the horizon."""
        return np.where(self.is_training, self.budget, self.demand.sum(axis=1))


def _speeds(w: Workload, clusters: list[Cluster], group: int, fits) -> np.ndarray:
    types = {ALIASES.get(t, t): s for t, s in w.gpu_types.items()}
    out = np.zeros(len(clusters))
    for j, c in enumerate(clusters):
        ok = (c.gpu.name in types and c.usable_gpus_per_domain >= group and fits(c)
              and (w.providers is None or c.provider in w.providers)
              and (w.regions is None or c.region in w.regions or c.area in w.regions))
        out[j] = types[c.gpu.name] if ok else 0.0
    return out


def _training(w: TrainingWorkload, clusters: list[Cluster], periods: Periods, scenario_end: date):
    b = periods.ordinals
    full_end = w.deadline or scenario_end
    full_days = max(1, (full_end - w.start).days)
    inside = window_days(w.start, full_end, b)
    share = inside.sum() / full_days               # the part of the program's window that is in the plan
    speed = _speeds(w, clusters, w.tp, lambda c: c.max_gang_gpus >= w.gpus)
    rate = inside * HOURS_PER_DAY * w.gpus          # one gang at a time
    return speed, np.zeros(periods.n), w.work_gpu_hours * w.runs * share, inside > 0, rate


def _inference(w: InferenceWorkload, key: str, clusters: list[Cluster], periods: Periods):
    def in_key(c: Cluster) -> bool:
        return c.region == key or c.area == key
    speed = _speeds(w, clusters, w.replica_tp, in_key)
    days = [d.date.toordinal() for d in w.demand]
    replicas = [float(d.replicas.get(key, 0)) for d in w.demand]
    demand = step_integral(days, replicas, periods.ordinals) * HOURS_PER_DAY * w.gpus_per_replica
    return speed, demand, 0.0, demand > 0, np.full(periods.n, np.inf)


def _batch(w: BatchWorkload, clusters: list[Cluster], periods: Periods):
    speed = _speeds(w, clusters, w.gpus, lambda c: True)
    per_day = w.jobs_per_day * w.gpus * w.duration_s / 3600.0
    demand = window_days(w.start, w.end, periods.ordinals) * per_day
    return speed, demand, 0.0, demand > 0, np.full(periods.n, np.inf)


def build_streams(workloads: tuple[Workload, ...] | list[Workload], clusters: list[Cluster], periods: Periods,
                  scenario_end: date) -> Streams:
    """One stream per training or batch workload, one per (inference workload, region or area it names)."""
    rows: list[tuple[str, str, str, tuple]] = []
    for w in workloads:
        if isinstance(w, TrainingWorkload):
            rows.append((w.name, w.name, "training", _training(w, clusters, periods, scenario_end)))
        elif isinstance(w, InferenceWorkload):
            keys = list(dict.fromkeys(k for d in w.demand for k in d.replicas))
            for key in keys:
                rows.append((f"{w.name}@{key}", w.name, "inference", _inference(w, key, clusters, periods)))
        else:
            rows.append((w.name, w.name, "batch", _batch(w, clusters, periods)))
    keep = [r for r in rows if r[3][2] > 0 or r[3][1].sum() > 0]   # nothing asked in the plan: leave it out
    S, C, P = len(keep), len(clusters), periods.n

    def stack(i: int, shape: tuple[int, ...]) -> np.ndarray:
        return np.array([r[3][i] for r in keep], dtype=float).reshape(shape)
    return Streams(
        names=tuple(r[0] for r in keep), workloads=tuple(r[1] for r in keep), kinds=tuple(r[2] for r in keep),
        speed=stack(0, (S, C)), demand=stack(1, (S, P)), budget=stack(2, (S,)),
        window=stack(3, (S, P)).astype(bool), rate_cap=stack(4, (S, P)))
