"""The simulator's HTML report: one self-contained page (plotly.js inline once, no CDN), escaped strings."""

from __future__ import annotations

import random
import re
import time
from datetime import datetime, timezone

import pytest

from gpufleet.files import load_scenario
from gpufleet.report.html import simulation_report
from gpufleet.simulation.failures import Outage
from gpufleet.simulation.simulator import SimOptions, Simulator

UNTIL = datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp()
PLOTLY_SIGNATURE = "* plotly.js v"
TITLES = ["Utilization per provider", "Capacity by provider", "Commitment burn-down vs schedule: aws-commit",
          "Wait-time distribution", "Failures over time", "Provider share over time per workload class"]


def _run(portfolio, profile: str, outages=()) -> dict:
    opts = SimOptions(until_s=UNTIL, outages=list(outages))
    return Simulator(portfolio, profile, opts, random.Random(1)).run(time.perf_counter)


@pytest.fixture(scope="module")
def small():
    p = load_scenario("examples/small.yaml")
    oci_down = Outage(target="oci", kind="provider", duration_s=86400.0,
                      start_s=datetime(2026, 2, 1, tzinfo=timezone.utc).timestamp())
    terms = {k.name: (k.start.isoformat(), k.end.isoformat(), k.commitment_usd)
             for k in p.contracts if k.kind == "spend_commitment"}
    return [_run(p, "cost"), _run(p, "list-price", [oci_down])], terms


@pytest.fixture(scope="module")
def page(small) -> str:
    results, terms = small
    return simulation_report(results, "small-lab: cost vs list-price", ["look at the burn-down"], terms)


def test_one_self_contained_document(page):
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<html") == 1 and page.count("</html>") == 1 and page.count("<body>") == 1
    assert page.count(PLOTLY_SIGNATURE) == 1
    # no script is loaded from anywhere (plotly.js itself names a CDN only as the default for geo maps' topojson)
    assert re.search(r"<script[^>]*\bsrc\s*=", page) is None and 'src="http' not in page


def test_every_chart_is_there_with_a_title(page):
    for title in TITLES:
        assert title in page, title
    # one figure per distinct result, plus one per commitment and the shared wait chart
    assert len(re.findall(r'<div id="chart-\d+"', page)) >= len(TITLES)
    assert "schedule (committed" in page       # the term was given: the straight-line schedule is drawn
    assert "provider outage" in page and "oci down" in page


def test_summary_table_has_a_column_per_profile(page, small):
    results, _ = small
    table = page[page.index("<table>"):page.index("</table>")]
    assert "<th>cost</th>" in table and "<th>list-price</th>" in table
    for row in ("cost (USD)", "utilization", "wait p99", "inference SLO attainment", "wall time (s)"):
        assert row in table
    assert f"{results[0]['jobs']:,}" in table
    assert "<li>look at the burn-down</li>" in page


def test_strings_are_escaped(small):
    results, _ = small
    page = simulation_report(results[:1], "<script>alert(1)</script>", ["a < b & <b>c</b>"])
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<li>a &lt; b &amp; &lt;b&gt;c&lt;/b&gt;</li>" in page


def test_without_terms_only_billed_is_drawn(small):
    results, _ = small
    page = simulation_report(results[:1], "one run")
    assert "Commitment burn-down vs schedule: aws-commit" in page
    assert "billed: cost" in page and "schedule (committed" not in page
    assert "<ul>" not in page                  # no notes, no list


def test_no_results_is_an_error():
    with pytest.raises(ValueError):
        simulation_report([], "nothing")
