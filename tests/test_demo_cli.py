"""`gpufleet demo` (the simulation): with `--json` and no file, stdout holds the JSON document alone."""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Self

import pytest
from cli_helpers import gpufleet

from gpufleet.cli import demo, demo_choice


class InProcessPool:
    """Stands in for the demo's process pool: the two runs, one after the other, in this process."""

    def __init__(self, max_workers: int | None = None):
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn, items):
        return [fn(i) for i in items]

    def submit(self, fn, *args):
        f: Future = Future()
        f.set_result(fn(*args))
        return f


@pytest.fixture
def short_demo(monkeypatch):
    """The demo as it is, over its first days only (the outage falls outside; the full ramp takes ~40 s)."""
    monkeypatch.setattr(demo, "ProcessPoolExecutor", InProcessPool)
    monkeypatch.setattr(demo, "DEMO_UNTIL", "2025-11-04")
    monkeypatch.setattr(demo_choice, "CHOICE_MONTHS", 1)


@pytest.mark.parametrize("json_args", [("--json",), ("--json", "-")])
def test_demo_json_on_stdout_is_one_document_and_the_narration_goes_to_stderr(short_demo, tmp_path, json_args):
    report = tmp_path / "demo.html"
    r = gpufleet("demo", *json_args, "--report", str(report))
    assert r.code == 0, r.err
    doc = json.loads(r.out)  # nothing but the document on stdout
    assert [run["profile"] for run in doc["runs"]] == list(demo.PROFILES)
    choice = doc["choice"]                   # posttrain-crunch: following the plan beats greedy marginal cost
    assert [run["profile"] for run in choice["runs"]] == list(demo_choice.CHOICE_PROFILES)
    assert choice["ratio_to_lp"]["plan"] < 1.05 < 1.5 < choice["ratio_to_lp"]["cost"]
    assert "Plan: on posttrain-crunch" in r.err
    assert "gpufleet demo:" in r.err and "Cost: placing by effective cost" in r.err
    assert f"report written to {report}" in r.err
    assert report.is_file()


def test_demo_with_a_json_file_keeps_the_narration_on_stdout(short_demo, tmp_path):
    report, doc_file = tmp_path / "demo.html", tmp_path / "demo.json"
    r = gpufleet("demo", "--json", str(doc_file), "--report", str(report))
    assert r.code == 0, r.err
    assert "gpufleet demo:" in r.out and "Cost: placing by effective cost" in r.out
    assert len(json.loads(doc_file.read_text())["runs"]) == 2


def test_each_demo_run_reports_its_progress(monkeypatch):
    monkeypatch.setattr(demo_choice, "CHOICE_MONTHS", 1)
    seen: dict = {}
    r = demo._one((demo.CHOICE, "cost", 0, 3, seen))
    assert r["profile"] == "cost" and seen[3] >= 0.98           # the parent's bar for run 3 reaches the end
