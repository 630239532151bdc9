"""`gpufleet plan` as users see it: exit codes, the JSON document on stdout, the report, what-ifs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from conftest import EXAMPLES, ROOT
from gpufleet.cli.plan import plan

SMALL = str(EXAMPLES / "small.yaml")


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command()(plan)
    app.command("noop")(lambda: None)   # two commands: `plan` stays a subcommand, as in gpufleet
    return app


def run(*args: str):
    r = CliRunner().invoke(_app(), ["plan", *args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r


def test_json_document_on_stdout():
    r = run(SMALL, "--json", "-", "--what-if", "drop:lambda", "--check-months", "1")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "optimal" and doc["gap"] == pytest.approx(0.0, abs=1e-9)
    for key in ("objective_usd", "periods", "per_contract", "unmet", "shadow_prices", "solve_s", "build_s",
                "variables", "constraints", "per_provider", "what_if", "baselines", "simulation_check"):
        assert key in doc
    assert doc["what_if"][0]["spec"] == "drop:lambda"
    assert set(doc["simulation_check"]["per_provider"]) == set(doc["per_provider"])
    assert doc["baselines"]["greedy_list_price"]["objective_usd"] >= doc["objective_usd"] - 1e-3


def test_stdout_is_pure_json_even_with_the_solver_banner():
    code = "import typer,sys;from gpufleet.cli.plan import plan;a=typer.Typer();a.command()(plan);" \
           "a.command('noop')(lambda: None);a()"
    r = subprocess.run([sys.executable, "-c", code, "plan", SMALL, "--json", "-", "--no-baselines"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "optimal"


def test_text_output_has_the_tables(tmp_path):
    r = run(SMALL, "--what-if", "cap:inference:0.5", "--no-baselines")
    assert r.exit_code == 0
    for words in ("GPU-hours planned / capacity", "contracts", "unmet demand", "shadow prices", "what-if"):
        assert words in r.stdout


@pytest.mark.parametrize("args, words", [
    (["--what-if", "drop:nobody"], "unknown provider"),
    (["--what-if", "delay:aws-use1-gb200"], "expected delay:CLUSTER:N"),
    (["--from", "2026-06-01", "--to", "2026-03-01"], "must end after it starts"),
    (["--from", "June"], "expected an ISO date"),
    (["--period-months", "0"], "at least 1"),
    (["--unmet-penalty", "-5"], "positive"),
    (["--check-months", "-1"], "0 or more")])
def test_bad_input_exits_2_with_a_clear_message(args, words):
    r = run(SMALL, *args)
    assert r.exit_code == 2
    assert words in r.stderr


def test_missing_scenario_exits_2(tmp_path):
    assert run(str(tmp_path / "nope.yaml")).exit_code == 2


def test_report_is_one_self_contained_page(tmp_path):
    from plotly.offline import get_plotlyjs
    out = tmp_path / "plan.html"
    r = run(SMALL, "--report", str(out), "--what-if", "drop:aws", "--no-baselines")
    assert r.exit_code == 0
    html = out.read_text()
    assert html.count(get_plotlyjs()[:200]) == 1
    assert "<script src=" not in html
    for words in ("Capacity vs plan", "Commitment burn-down", "Waste per contract", "aws-commit"):
        assert words in html


def test_simulation_check_from_a_later_start():
    r = run(SMALL, "--from", "2026-03-01", "--to", "2026-07-01", "--check-months", "1", "--json", "-",
            "--no-baselines")
    assert r.exit_code == 0, r.output
    import json
    doc = json.loads(r.stdout)
    assert doc["simulation_check"]["start"].startswith("2026-03-01")
