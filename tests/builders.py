"""Builders so tests read like specs: a_scenario().with_cluster(a_cluster(...)).yaml()."""

from __future__ import annotations

import copy
from typing import Any

import yaml


def a_cluster(name: str = "c1", *, provider: str = "aws", region: str = "us-east-1", gpu: str = "H100",
              domains: int = 4, **more: Any) -> dict:
    d = {"name": name, "provider": provider, "region": region, "gpu": gpu, "domains": domains,
         "price_per_gpu_hour": 2.0}
    if "ramp" in more:
        d.pop("domains")
    d.update(more)
    return d


def a_training(name: str = "t1", *, gpus: int = 8, tp: int = 8, gpu_types: dict | None = None, **more: Any) -> dict:
    return {"kind": "training", "name": name, "gpus": gpus, "tp": tp, "gpu_types": gpu_types or {"H100": 1.0},
            "work_gpu_hours": 100.0, "start": "2026-01-01", **more}


def a_contract(name: str = "k1", kind: str = "on_demand", *, provider: str = "aws", clusters=("c1",),
               **more: Any) -> dict:
    d = {"name": name, "kind": kind, "provider": provider, "clusters": list(clusters),
         "start": "2026-01-01", "end": "2027-01-01"}
    if kind == "spend_commitment":
        d |= {"commitment_usd": 1_000_000.0, "price_per_gpu_hour": 2.0}
    if kind == "reserved_capacity":
        d |= {"gpus": 8, "price_per_gpu_hour": 1.5}
    d.update(more)
    return d


class ScenarioBuilder:
    def __init__(self) -> None:
        self.doc: dict[str, Any] = {"name": "test", "start": "2026-01-01", "end": "2027-01-01",
                                    "clusters": [], "contracts": [], "workloads": []}

    def with_cluster(self, c: dict) -> "ScenarioBuilder":
        self.doc["clusters"].append(c)
        return self

    def with_contract(self, c: dict) -> "ScenarioBuilder":
        self.doc["contracts"].append(c)
        return self

    def with_workload(self, w: dict) -> "ScenarioBuilder":
        self.doc["workloads"].append(w)
        return self

    def set(self, **fields: Any) -> "ScenarioBuilder":
        self.doc.update(fields)
        return self

    def build(self) -> dict:
        d = copy.deepcopy(self.doc)
        if not d["clusters"]:
            d["clusters"] = [a_cluster()]
        return d

    def yaml(self) -> str:
        return yaml.safe_dump(self.build(), sort_keys=False)


def a_scenario() -> ScenarioBuilder:
    return ScenarioBuilder()


# -- placement builders -------------------------------------------------------------------------------
def a_portfolio(*clusters: dict, contracts=(), teams=(), limits=(), workloads=(), **fields: Any):
    """A resolved Portfolio from builder dicts (validated exactly like a file)."""
    from gpufleet.catalog import bundled_catalog
    from gpufleet.model.checks import build_portfolio
    from gpufleet.model.scenario import Scenario

    doc = {"name": "t", "start": "2026-01-01", "end": "2027-01-01",
           "clusters": list(clusters) or [a_cluster()], "contracts": list(contracts),
           "teams": list(teams), "workloads": list(workloads),
           "policies": {"concentration_limits": list(limits)}, **fields}
    return build_portfolio(Scenario.model_validate(doc), bundled_catalog())


def a_request(rid: str = "r1", gpus: int = 1, group: int | None = None, *, types=("H100",), **more: Any):
    from gpufleet.placement.request import Request

    return Request(id=rid, gpus=gpus, group=group or gpus, speeds={t: 1.0 for t in types}, **more)


def an_engine(portfolio, at: str = "2026-06-01", profile: str = "cost"):
    from datetime import date

    from gpufleet.placement.engine import Engine
    from gpufleet.placement.state import to_seconds

    return Engine(portfolio, to_seconds(date.fromisoformat(at)), profile)


K8S_DOMAIN = "ds.coreweave.com/nvlink.domain"  # CoreWeave's NVLink domain node label


def a_k8s_launch(**kw: Any):
    """A launch on a CoreWeave-like Kubernetes cluster: one GPU of job 42 unless told otherwise."""
    from gpufleet.backends.base import Launch
    base = {"job_id": 42, "attempt": 1, "request_id": "train", "name": "train", "team": "research",
            "command": "echo hi", "env": {}, "cluster": "cw-us-east", "provider": "coreweave",
            "gpu_type": "H100", "parts": ((0, 1),), "group": 1, "domain_size": 8, "checkpoint_dir": "/ckpt/42"}
    base.update(kw)
    return Launch(**base)
