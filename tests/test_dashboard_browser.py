"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright) against a real
`gpufleet serve`: log in with a token, see the plots drawn with the server's data, and a team token kept to
its own team. Set GPUFLEET_SCREENSHOTS=<dir> to keep the screenshots (docs/ holds the README's)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from live_helpers import ADMIN, LIVE_SCENARIO, wait_for
from server_proc import ServerProcess

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root in a closed network: no sandbox, and none of Chromium's own connections out.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _browser_or_skip():
    required = os.environ.get("GPUFLEET_REQUIRE_BROWSER") == "1"   # .ci/run installs both: never skip there
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("needs playwright (pip install playwright)")
    if not Path(CHROMIUM).exists():
        if required:
            raise AssertionError(f"{CHROMIUM} not found: install Debian's chromium")
        pytest.skip("needs Debian's chromium")
    return sync_playwright


# live-local with a take-or-pay commitment on site-a, so the money tab has a burn-down to draw
COMMITTED = LIVE_SCENARIO.read_text().replace("""  - name: site-a-od
    kind: on_demand
    provider: site-a
    clusters: [local-a]
    start: 2026-01-01
    end: 2036-01-01""", """  - name: site-a-commit
    kind: spend_commitment
    provider: site-a
    clusters: [local-a]
    start: 2026-01-01
    end: 2036-01-01
    commitment_usd: 150000
    price_per_gpu_hour: 1.50""")


@pytest.fixture
def server(tmp_path):
    assert "site-a-commit" in COMMITTED
    scenario = tmp_path / "committed.yaml"
    scenario.write_text(COMMITTED)
    srv = ServerProcess(f"sqlite:///{tmp_path / 'g.db'}", tmp_path, scenario=scenario, poll=0.1).start()
    yield srv
    srv.stop()


def _api(srv: ServerProcess, method: str, path: str, token: str = ADMIN, **kw) -> httpx.Response:
    return httpx.request(method, srv.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10, **kw)


def _token(srv: ServerProcess, team: str) -> str:
    r = _api(srv, "POST", "/v1/tokens", json={"team": team})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def _shots(tmp_path: Path) -> Path:
    d = Path(os.environ.get("GPUFLEET_SCREENSHOTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _login(page, srv: ServerProcess, token: str) -> None:
    page.goto(srv.url + "/")
    page.fill("#token", token)
    page.click("#tokenform button")
    page.wait_for_selector("body[data-loaded=fleet]", timeout=20_000)


def _traces(page, chart: str) -> list[dict]:
    """What plotly drew in a chart: each trace's name and how many points have a value."""
    return page.evaluate("""(id) => (document.getElementById(id).data || []).map(t => ({name: t.name,
        points: (t.y || t.z || []).flat().filter(v => v !== null && v !== undefined).length}))""", chart)


def _submit(srv: ServerProcess, token: str, name: str, gpus: str, command: str = "sleep 60") -> int:
    r = _api(srv, "POST", "/v1/jobs", token, json={"job": {"name": name, "kind": "batch", "gpus": gpus,
                                                         "command": command}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_an_admin_sees_the_fleet_money_and_work_plotted_from_the_live_server(server, tmp_path):
    sync_playwright = _browser_or_skip()
    research, serving = _token(server, "research"), _token(server, "serving")
    held = _submit(server, research, "pretrain-shard", "H100:6")
    _submit(server, serving, "eval", "H100:4")
    _submit(server, research, "too-big-now", "H100:8")     # waits: the fleet has 16 GPUs, 10 taken
    wait_for(lambda: _api(server, "GET", f"/v1/jobs/{held}").json()["state"] == "running", what="a running job")
    wait_for(lambda: len(_api(server, "GET", "/v1/history?range=1h").json()["teams"]) == 2,
             what="the server's sampler to record both teams")   # it samples at most every 5 s
    shots = _shots(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        _login(page, server, ADMIN)
        assert "admin" in page.inner_text("#who")
        fleet = {t["name"]: t["points"] for t in _traces(page, "chart-fleet")}
        assert fleet["GPUs in the fleet"] > 0 and fleet["site-a allocated"] + fleet["site-b allocated"] > 0
        assert page.locator("#chart-fleet .main-svg").count() >= 1          # plotly drew it
        assert _traces(page, "chart-domains")[0]["points"] == 2             # two NVLink domains, one per cluster
        assert "local-a" in page.inner_text("#clusters")
        page.screenshot(path=str(shots / "dashboard-fleet.png"), full_page=True)

        page.click("nav a[data-tab=work]")
        page.wait_for_selector("body[data-loaded=work]")
        queue = page.inner_text("#queue")
        assert "too-big-now" in queue and "eval" not in queue
        assert any(t["name"] == "research running" for t in _traces(page, "chart-queue"))
        page.screenshot(path=str(shots / "dashboard-work.png"), full_page=True)

        page.click("nav a[data-tab=money]")
        page.wait_for_selector("body[data-loaded=money]")
        assert "spend this month" in page.inner_text("#money-cards")
        assert {t["name"] for t in _traces(page, "chart-teams")} == {"USD"}
        burn = {t["name"]: t["points"] for t in _traces(page, "chart-burndown")}
        assert burn["site-a-commit on schedule"] > 0 and burn["site-a-commit drawn"] > 0
        assert "site-a-commit" in page.inner_text("#contracts")
        page.screenshot(path=str(shots / "dashboard-money.png"), full_page=True)
        browser.close()


def test_a_team_token_sees_its_own_team_and_is_refused_anothers(server, tmp_path):
    sync_playwright = _browser_or_skip()
    research, serving = _token(server, "research"), _token(server, "serving")
    _submit(server, research, "ours", "H100:2")
    _submit(server, serving, "theirs", "H100:2")
    wait_for(lambda: len(_api(server, "GET", "/v1/history?range=1h").json()["teams"]) == 2,
             what="the server's sampler to record both teams")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server.url + "/")
        page.fill("#token", "not-a-token")
        page.click("#tokenform button")
        page.wait_for_selector("#loginerror:has-text('token refused')")
        _login(page, server, research)
        assert page.inner_text("#who") == "team research"
        page.click("nav a[data-tab=work]")
        page.wait_for_selector("body[data-loaded=work]")
        page.wait_for_function("document.getElementById('gangs').innerText.includes('ours') || "
                               "document.getElementById('queue').innerText.includes('ours')")
        text = page.inner_text("#tab-work")
        assert "ours" in text and "theirs" not in text
        teams = {t["name"] for t in _traces(page, "chart-queue")}
        assert teams and all(n.startswith("research ") for n in teams)
        asked = page.evaluate("""async () => (await fetch('/v1/jobs?team=serving',
            {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('gpufleet-token')}})).status""")
        assert asked == 403
        page.click("nav a[data-tab=money]")
        page.wait_for_selector("body[data-loaded=money]")
        assert "admin tokens" in page.inner_text("#money-note")
        browser.close()
