"""The bundled catalog: the GPU types the issue names, with public figures, and priced offerings."""

import csv

import pytest

from cli_helpers import gpufleet
from gpufleet.catalog import bundled_catalog

REQUIRED = ["A100", "H100", "H200", "B200", "B300", "GB200", "GB300", "MI300X", "MI355X"]


def test_required_gpu_types_with_domains():
    cat = bundled_catalog()
    for name in REQUIRED:
        g = cat.gpu(name)
        assert g is not None, name
        assert g.hbm_gb > 0 and g.bf16_dense_tflops > 0 and g.source
    assert cat.gpu("GB200").nvlink_domain_gpus == 72
    assert cat.gpu("GB300").nvlink_domain_gpus == 72
    assert cat.gpu("H100").nvlink_domain_gpus == 8
    assert cat.gpu("H100-SXM").name == "H100"  # alias


def test_offerings_reference_known_gpus_and_have_sources():
    cat = bundled_catalog()
    assert len(cat.offerings) >= 40
    for o in cat.offerings.values():
        assert cat.gpu(o.gpu) is not None, o.id
        assert o.source
        assert o.price_per_gpu_hour is None or 0 < o.price_per_gpu_hour < 100
    assert cat.offerings["aws-p5-use1-od"].price_per_gpu_hour == pytest.approx(6.88)
    assert cat.offerings["cw-gb200-na-od"].nvlink_domain_gpus == 72


def test_figures_agree_with_shared_catalog(shared):
    """Our own file carries the same facts as the shared compilation (checked when it is present)."""
    rows = {r["gpu_model"]: r for r in csv.DictReader(open(shared / "data/catalog/gpus.csv"))}
    ours = bundled_catalog()
    pairs = {"H100": "H100-SXM", "H200": "H200-SXM", "B200": "B200", "GB300": "GB300 (per GPU in NVL72)",
             "MI300X": "MI300X"}
    for name, theirs in pairs.items():
        g, r = ours.gpu(name), rows[theirs]
        assert g.hbm_gb == float(r["hbm_capacity_gb"])
        assert g.bf16_dense_tflops == float(r["bf16_dense_tflops"])
        assert g.nvlink_domain_gpus == int(r["scaleup_domain_size_gpus"])


def test_catalog_command_filters_and_json():
    r = gpufleet("catalog", "--gpu", "GB200", "--json")
    assert r.code == 0
    doc = r.json()
    assert [g["name"] for g in doc["gpus"]] == ["GB200"]
    assert doc["offerings"] and all(o["gpu"] == "GB200" for o in doc["offerings"])
    r = gpufleet("catalog", "--provider", "lambda", "--json")
    assert {o["provider"] for o in r.json()["offerings"]} == {"lambda"}
    assert gpufleet("catalog", "--gpu", "GB999").code == 2
    r = gpufleet("catalog")
    assert r.code == 0 and "MI355X" in r.out
