"""Backends that misbehave the ways real client libraries do, for tests of IsolatedBackend (they are
imported by name in a spawned child, so they live in a module of their own)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from gpufleet.backends.base import BackendError, BackendUnavailable, Launch, Loss, Status


class Toy:
    """Behaves while `dir/mode` is absent; otherwise: `hang` (a call never returns), `exit` (the process
    ends, as Ray's driver does), `refuse` (BackendError), `gone` (BackendUnavailable), `crash` (a bug)."""

    def __init__(self, name: str, dir: str, fail_build: bool = False):
        if fail_build:
            raise BackendError("cannot reach the toy cluster's API")
        self.name, self.dir = name, Path(dir)
        self.started: dict[str, Launch] = {}
        (self.dir / "pids").mkdir(parents=True, exist_ok=True)
        (self.dir / "pids" / str(os.getpid())).touch()

    def _misbehave(self) -> None:
        mode = (self.dir / "mode").read_text().strip() if (self.dir / "mode").exists() else ""
        if mode == "hang":
            time.sleep(3600)
        elif mode == "exit":
            os._exit(1)
        elif mode == "refuse":
            raise BackendError("the toy refuses")
        elif mode == "gone":
            raise BackendUnavailable("the toy cluster is gone")
        elif mode == "crash":
            raise KeyError("a bug in the client library")

    def start(self, launch: Launch) -> dict:
        self._misbehave()
        self.started[launch.request_id] = launch
        return {"id": launch.request_id, "pid": os.getpid(), "gpus": launch.gpus}

    def poll(self, handles: dict[int, dict]) -> dict[int, Status]:
        self._misbehave()
        return {k: Status("succeeded", 0, f"ran in {os.getpid()}") for k in handles}

    def cancel(self, handle: dict) -> None:
        self._misbehave()

    def logs(self, handle: dict, tail: int | None = None) -> str:
        self._misbehave()
        return f"logs of {handle['id']} (tail {tail}) seen by {len(self.started)} starts in this process"

    def losses(self) -> list[Loss]:
        self._misbehave()
        return [Loss("toy-cluster", 3, "toy node down")]

    def close(self) -> None:
        (self.dir / "closed").write_text(str(os.getpid()))
