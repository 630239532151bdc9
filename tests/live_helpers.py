"""A live server in the test process: the real app and control loop, a fake or local backend."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fastapi.testclient import TestClient

from gpufleet.backends.base import BackendSet
from gpufleet.backends.fake import FakeBackend
from gpufleet.server.app import Settings, create_app

ROOT = Path(__file__).resolve().parents[1]
LIVE_SCENARIO = ROOT / "examples" / "live-local.yaml"
ADMIN = "admin-secret-token"


def wait_for(pred: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll until `pred()` is truthy (a state to reach, not a speed to assert)."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Live:
    client: TestClient
    backends: dict[str, Any]
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}"}

    def team(self, name: str) -> dict[str, str]:
        if name not in self.tokens:
            r = self.client.post("/v1/tokens", json={"team": name}, headers=self.admin)
            assert r.status_code == 201, r.text
            self.tokens[name] = r.json()["token"]
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def submit(self, headers: dict, key: str | None = None, **job: Any) -> dict:
        job.setdefault("kind", "batch")
        job.setdefault("gpus", "H100:1")
        job.setdefault("command", "true")
        body: dict[str, Any] = {"job": job}
        if key:
            body["key"] = key
        r = self.client.post("/v1/jobs", json=body, headers=headers)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def job(self, job_id: int, headers: dict | None = None) -> dict:
        r = self.client.get(f"/v1/jobs/{job_id}", headers=headers or self.admin)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_state(self, job_id: int, *states: str, timeout: float = 20.0) -> dict:
        return wait_for(lambda: (j := self.job(job_id)) and j["state"] in states and j, timeout,
                        f"job {job_id} to reach {states}")


def make_app(db_url: str, data_dir: Path, backends: dict[str, Any] | None = None, default: str = "local",
             scenario: Path | None = LIVE_SCENARIO, poll_s: float = 0.05):
    bset = BackendSet(default, backends if backends is not None else {"local": FakeBackend("local")})
    settings = Settings(db_url=db_url, data_dir=str(data_dir), scenario=str(scenario) if scenario else None,
                        admin_token=ADMIN, poll_s=poll_s, backends=bset)
    return create_app(settings), bset.backends


def checkpoint_of(data_dir: Path, db_url: str, job_id: int) -> Path:
    """The checkpoint directory of a server's job: keyed by its database's identity."""
    from gpufleet.server.dispatch import checkpoint_dir
    from gpufleet.store import connect
    from gpufleet.store.db import identity
    eng = connect(db_url)
    try:
        instance = identity(eng, create=False)
    finally:
        eng.dispose()
    assert instance, f"{db_url} has no identity yet"
    return checkpoint_dir(data_dir, instance, job_id)
