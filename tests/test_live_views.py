"""What `jobs` and `events` show first: current work, newest first, where it runs; options that say what
they take."""

from __future__ import annotations

from click.testing import CliRunner

from gpufleet.cli import live as live_cli
from gpufleet.cli.main import command


def test_the_jobs_list_can_show_active_work_newest_first_with_its_clusters(live):
    h = live.team("research")
    done = live.submit(h, name="done", kind="batch", gpus="H100:1", command="true")
    live.wait_state(done["id"], "running")
    live.backends["local"].finish(done["id"], 0)
    live.wait_state(done["id"], "succeeded")
    run = live.submit(h, name="run", kind="batch", gpus="H100:2", command="sleep 30")
    live.wait_state(run["id"], "running")
    rows = live.client.get("/v1/jobs", params={"active": True, "newest": True}, headers=h).json()
    assert [r["id"] for r in rows] == [run["id"]]
    assert rows[0]["clusters"] and rows[0]["clusters"][0] in ("local-a", "local-b")
    every = live.client.get("/v1/jobs", params={"newest": True}, headers=h).json()
    assert [r["id"] for r in every] == [run["id"], done["id"]] and every[1]["clusters"] == []
    r = live.client.get("/v1/jobs", params={"state": "bogus"}, headers=h)
    assert r.status_code == 422                                 # not a silent empty list


def test_the_cli_refuses_an_unknown_state_and_names_values_in_help():
    r = CliRunner().invoke(command(), ["jobs", "--state", "bogus"])
    assert r.exit_code == 2 and "'bogus' is not one of" in r.output
    help_text = CliRunner().invoke(command(), ["jobs", "--help"]).output
    assert "--team TEAM" in help_text and "--server URL" in help_text and "<str>" not in help_text
    help_text = CliRunner().invoke(command(), ["simulate", "--help"]).output
    assert "<list[str]>" not in help_text and "--fail FAIL" in help_text


class FakeClient:
    """Answers the follow loop: two more events, then Ctrl-C."""

    def __init__(self):
        self.asked: list[dict] = []

    def call(self, method, path, params=None, **_):
        self.asked.append(dict(params))
        if len(self.asked) == 1:
            return [{"id": 7, "at": 0.0, "kind": "placed", "actor": "control", "job_id": 1, "message": "m7"}]
        raise KeyboardInterrupt


def test_events_follow_prints_oldest_first_then_asks_only_for_newer(monkeypatch, capsys):
    monkeypatch.setattr(live_cli, "FOLLOW_POLL_S", 0.0)
    client = FakeClient()
    first = [{"id": i, "at": 0.0, "kind": "submitted", "actor": "t", "job_id": 1, "message": f"m{i}"} for i in (5, 6)]
    live_cli._follow_events(client, {"after": 0, "limit": 10, "newest": True}, first, as_json=False)
    said = capsys.readouterr().out
    assert said.index("m5") < said.index("m6") < said.index("m7")
    assert client.asked[0]["after"] == 6 and client.asked[0]["newest"] is False
    assert client.asked[1]["after"] == 7
