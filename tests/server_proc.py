"""A real `gpufleet serve` in a subprocess, for tests that kill it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from live_helpers import ADMIN, LIVE_SCENARIO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, db_url: str, data_dir: Path, scenario: Path = LIVE_SCENARIO, backend: str = "local",
                 poll: float = 0.1, extra: tuple[str, ...] = ()):
        self.db_url, self.data_dir, self.scenario, self.backend, self.poll = db_url, data_dir, scenario, backend, poll
        self.extra = extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = data_dir / "server.log"

    def start(self) -> "ServerProcess":
        env = {**os.environ, "GPUFLEET_ADMIN_TOKEN": ADMIN}
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpufleet", "serve", "--db", self.db_url, "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--scenario", str(self.scenario), "--backend", self.backend,
             "--poll", str(self.poll), *self.extra], stdout=out, stderr=subprocess.STDOUT, env=env)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not come up")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
