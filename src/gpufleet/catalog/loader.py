"""Load the bundled catalog CSV files (package data) into typed objects."""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

from ..model.gpu import GpuType

Pricing = Literal["on_demand", "spot", "capacity_block"]

# Common spellings users write for catalog GPU names.
ALIASES = {
    "A100-80GB": "A100", "H100-SXM": "H100", "H200-SXM": "H200", "GB200-NVL72": "GB200",
    "GB300-NVL72": "GB300", "HGX-B200": "B200", "HGX-B300": "B300",
}


@dataclass(frozen=True, slots=True)
class Offering:
    id: str
    provider: str
    region: str  # "*" means the same list price in every region
    gpu: str
    instance_type: str
    gpus_per_instance: int
    nvlink_domain_gpus: int
    pricing: Pricing
    price_per_gpu_hour: float | None  # None: no public price
    price_snapshot: str
    source: str


@dataclass(frozen=True)
class Catalog:
    gpus: dict[str, GpuType]
    offerings: dict[str, Offering] = field(default_factory=dict)

    def gpu(self, name: str) -> GpuType | None:
        return self.gpus.get(ALIASES.get(name, name))

    def canonical(self, name: str) -> str:
        return ALIASES.get(name, name)

    def with_gpus(self, extra: list[GpuType]) -> "Catalog":
        return Catalog({**self.gpus, **{g.name: g for g in extra}}, self.offerings)

    def find(self, gpu: str | None = None, provider: str | None = None) -> list[Offering]:
        g = self.canonical(gpu) if gpu else None
        return [o for o in self.offerings.values()
                if (g is None or o.gpu == g) and (provider is None or o.provider == provider)]


def _num(s: str) -> float | None:
    return float(s) if s.strip() else None


def parse_gpus(text: str) -> dict[str, GpuType]:
    out = {}
    for r in csv.DictReader(io.StringIO(text)):
        out[r["name"]] = GpuType(
            name=r["name"], vendor=r["vendor"], hbm_gb=float(r["hbm_gb"]), hbm_tb_s=float(r["hbm_tb_s"]),
            bf16_dense_tflops=float(r["bf16_dense_tflops"]), fp8_dense_tflops=_num(r["fp8_dense_tflops"]),
            fp4_dense_tflops=_num(r["fp4_dense_tflops"]), nvlink_domain_gpus=int(r["nvlink_domain_gpus"]),
            power_w=_num(r["power_w"]), status=r["status"], source=r["source"])
    return out


def parse_offerings(text: str) -> dict[str, Offering]:
    out = {}
    for r in csv.DictReader(io.StringIO(text)):
        out[r["id"]] = Offering(
            id=r["id"], provider=r["provider"], region=r["region"], gpu=r["gpu"],
            instance_type=r["instance_type"], gpus_per_instance=int(r["gpus_per_instance"]),
            nvlink_domain_gpus=int(r["nvlink_domain_gpus"]), pricing=r["pricing"],  # type: ignore[arg-type]
            price_per_gpu_hour=_num(r["price_per_gpu_hour"]), price_snapshot=r["price_snapshot"],
            source=r["source"])
    return out


@functools.cache
def bundled_catalog() -> Catalog:
    data = resources.files("gpufleet.catalog") / "data"
    return Catalog(parse_gpus((data / "gpus.csv").read_text("utf-8")),
                   parse_offerings((data / "offerings.csv").read_text("utf-8")))
