"""Findings the summary states: idle reservations beside on-demand spend, commitments mostly unused."""

from __future__ import annotations

from cli_helpers import gpufleet

from gpufleet.report.findings import findings


def doc(*rows: dict) -> dict:
    return {"per_contract": list(rows)}


RES = {"contract": "cw", "kind": "reserved_capacity", "provider": "coreweave", "billed_usd": 2e6, "wasted_usd": 2e6}
OD = {"contract": "lam", "kind": "on_demand", "provider": "lambda", "billed_usd": 1.5e6}
COMMIT = {"contract": "aws", "kind": "spend_commitment", "provider": "aws", "billed_usd": 1e6,
          "owed_in_window_usd": 10e6, "wasted_usd": 9e6}


def test_an_idle_reservation_beside_on_demand_spend_is_named_with_both_sums():
    (f,) = findings(doc(RES, OD))
    assert "Reservation cw (coreweave) left $2.00M" in f and "$1.50M went to on-demand capacity (lam $1.50M)" in f
    assert findings(doc(RES)) == []                               # idle, but nothing bought instead
    assert findings(doc({**RES, "wasted_usd": 0.0}, OD)) == []     # used in full


def test_a_commitment_mostly_paid_for_nothing_is_named():
    (f,) = findings(doc(COMMIT))
    assert "Commitment aws (aws): $9.00M of the $10.00M owed in this window (90%)" in f
    assert findings(doc({**COMMIT, "wasted_usd": 4e6})) == []       # under half wasted: not worth a line


def test_simulate_prints_the_findings_and_puts_them_in_its_document(tmp_path):
    out = tmp_path / "r.json"
    r = gpufleet("simulate", "examples/small.yaml", "--until", "2026-02-01", "--json", str(out))
    assert r.code == 0, r.err
    import json
    d = json.loads(out.read_text())
    assert d["findings"] and any(f.startswith("Reservation cw-reserved") for f in d["findings"])
    assert "- Reservation cw-reserved" in r.out
