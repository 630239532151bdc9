"""Work that no cluster of the portfolio could ever take is refused at submit (422, CLI exit 2) with the
placement explanation, and nothing is stored; work that only cannot run now is queued as before."""

from __future__ import annotations

import pytest
from live_helpers import LIVE_SCENARIO, Live


def post(live: Live, headers: dict, **job) -> tuple[int, dict]:
    body = {"job": {"name": "j", "kind": "training", "command": "true", **job}}
    r = live.client.post("/v1/jobs", json=body, headers=headers)
    return r.status_code, r.json()


@pytest.mark.parametrize("team,job,says", [
    ("research", {"gpus": "H100:32", "tp": 8}, "exceeds this cluster's fabric"),   # the fabrics hold 8
    ("research", {"gpus": "GB200:8"}, "GPU type H100 is not among the allowed GB200"),
])
def test_work_that_can_never_run_is_refused_and_nothing_is_stored(live, team, job, says):
    code, doc = post(live, live.team(team), **job)
    assert code == 422, doc
    assert "can never run on this portfolio" in doc["error"] and says in doc["error"]
    assert live.client.get("/v1/jobs", headers=live.admin).json() == []
    assert not [e for e in live.client.get("/v1/events", headers=live.admin).json() if e["kind"] == "submitted"]


def test_work_that_only_cannot_run_now_is_queued(live):
    h = live.team("research")
    first = live.submit(h, name="first", kind="training", gpus="H100:8", command="sleep 30")
    second = live.submit(h, name="second", kind="training", gpus="H100:8", command="sleep 30")
    third = live.submit(h, name="third", kind="training", gpus="H100:8", command="sleep 30")   # both clusters busy
    assert {first["created"], second["created"], third["created"]} == {True}
    assert live.client.get(f"/v1/jobs/{third['id']}", headers=h).status_code == 200


def test_a_portfolio_that_can_never_run_queued_work_says_so(live):
    h = live.team("research")
    busy = [live.submit(h, name=f"b{i}", kind="training", gpus="H100:8", command="sleep 60") for i in range(2)]
    waiting = live.submit(h, name="w", kind="training", gpus="H100:8", tp=8, command="sleep 60")
    text = LIVE_SCENARIO.read_text().replace("    domain_size: 8\n    domains: 1\n",
                                              "    domain_size: 4\n    domains: 2\n")   # 4-GPU domains now
    r = live.client.put("/v1/portfolio", json={"scenario": text}, headers=live.admin)
    assert r.status_code == 200, r.text
    events = live.client.get("/v1/events", params={"job": waiting["id"]}, headers=live.admin).json()
    said = [e["message"] for e in events if e["kind"] == "inadmissible"]
    assert len(said) == 1 and "can never run on portfolio 'live-local'" in said[0]
    assert live.client.get(f"/v1/jobs/{waiting['id']}", headers=h).json()["state"] == "queued"
    assert busy
