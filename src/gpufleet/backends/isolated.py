"""A backend run in a child process of its own, behind a deadline on every call.

Some engines' client libraries can hang or end the whole process when their cluster goes away: Ray's driver
waits for a lost GCS for a minute and then exits the process it lives in. Inside the server that would stop
the control loop and every other backend with it. Here such a backend lives in a spawned child; each call
crosses a pipe and must answer within its deadline. A child that misses it or dies is killed and the call
raises `BackendUnavailable` (so the control loop counts the backend as down after its usual three misses and
moves the work); the next call starts a fresh child, whose backend reconnects and follows its work again
from the handles, exactly as after a server restart. Handles, launches, statuses and losses are plain,
picklable data, and BackendError / BackendUnavailable raised in the child are raised here unchanged.

Written by hand: the standard library's process pools give no per-call deadline with kill-and-respawn.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import signal
import threading
import time
from typing import Any

from .base import BackendError, BackendUnavailable, Launch, Loss, Status

log = logging.getLogger("gpufleet.backends")

_SPAWN = mp.get_context("spawn")  # no fork: the parent holds threads, sockets and a database pool


def _serve(conn: Any, module: str, cls: str, options: dict[str, Any]) -> None:
    """The child: build the backend, then answer calls until told to close or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the server is the server's to handle
    try:
        backend = getattr(importlib.import_module(module), cls)(**options)
    except BaseException as e:  # noqa: BLE001 - every failure to build goes back to the parent as an answer
        conn.send(("err", _portable(e)))
        return
    conn.send(("ok", None))
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        try:
            value = getattr(backend, method)(*args)
        except BaseException as e:  # noqa: BLE001
            conn.send(("err", _portable(e)))
        else:
            conn.send(("ok", value))
        if method == "close":
            break


def _portable(e: BaseException) -> BaseException:
    """The exception as the parent should see it: our backend errors as they are, anything else wrapped."""
    if isinstance(e, BackendError):
        return type(e)(*e.args)
    return BackendError(f"{type(e).__name__}: {e}")


class IsolatedBackend:
    """`module.cls(**options)` in a child process. `call_timeout_s` bounds poll, losses and logs;
    `start_timeout_s` and `cancel_timeout_s` bound start and cancel (a reservation or a graceful stop may
    legitimately take a while); `boot_timeout_s` bounds building the backend in a fresh child (imports
    included). A call waits for another one in progress no longer than its own deadline. After a child is
    lost, calls within `respawn_after_s` fail at once instead of paying for a new child each time."""

    def __init__(self, name: str, module: str, cls: str, options: dict[str, Any] | None = None, *,
                 call_timeout_s: float = 30.0, start_timeout_s: float = 240.0, cancel_timeout_s: float = 60.0,
                 boot_timeout_s: float = 60.0, respawn_after_s: float = 5.0):
        self.name = name
        self.module, self.cls = module, cls
        self.options = dict(options or {})
        self.call_timeout_s = call_timeout_s
        self.start_timeout_s = start_timeout_s
        self.cancel_timeout_s = cancel_timeout_s
        self.boot_timeout_s = boot_timeout_s
        self.respawn_after_s = respawn_after_s
        self._lost_at: float | None = None   # when the last child was lost (monotonic)
        self._lost_why = ""
        self._closed = False
        self._proc: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()  # the control loop and the logs route may call at once: one at a time
        self.restarts = 0

    # -- the child ------------------------------------------------------------------------------------------
    def _ensure(self) -> None:
        if self._closed:
            raise BackendUnavailable(f"backend {self.name} is closed")
        if self._proc is not None and self._proc.is_alive():
            return
        if self._proc is not None:
            self._kill(f"its process ended (exit code {self._proc.exitcode})")
        if self._lost_at is not None and time.monotonic() - self._lost_at < self.respawn_after_s:
            raise BackendUnavailable(f"backend {self.name}: {self._lost_why} (a new process starts in at "
                                     f"most {self.respawn_after_s:g}s)")
        parent, child = _SPAWN.Pipe()
        proc = _SPAWN.Process(target=_serve, args=(child, self.module, self.cls, self.options),
                              name=f"gpufleet-backend-{self.name}", daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        ok, value = self._answer("start-up", self.boot_timeout_s)
        if not ok:
            self._kill(f"it could not be built: {value}")
            raise value

    def _kill(self, why: str) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(timeout=10)
            self.restarts += 1
            self._lost_at, self._lost_why = time.monotonic(), why
            log.warning("backend %s: child process stopped: %s", self.name, why)

    def _answer(self, what: str, timeout: float) -> tuple[bool, Any]:
        conn = self._conn
        try:
            if not conn.poll(timeout):
                self._kill(f"{what} did not answer within {timeout:g}s")
                raise BackendUnavailable(f"backend {self.name}: {what} did not answer within {timeout:g}s")
            status, value = conn.recv()
        except (EOFError, OSError) as e:
            code = self._proc.exitcode if self._proc is not None else None
            self._kill(f"{what}: the process ended (exit code {code})")
            raise BackendUnavailable(f"backend {self.name}: its process ended during {what} "
                                     f"(exit code {code})") from e
        return status == "ok", value

    def _call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        deadline = self.call_timeout_s if timeout is None else timeout
        if not self._lock.acquire(timeout=deadline):
            raise BackendUnavailable(f"backend {self.name}: busy with another call for over {deadline:g}s")
        try:
            self._ensure()
            try:
                self._conn.send((method, args))
            except (OSError, ValueError) as e:
                self._kill(f"{method}: could not send")
                raise BackendUnavailable(f"backend {self.name}: its process is gone") from e
            ok, value = self._answer(method, deadline)
        finally:
            self._lock.release()
        if not ok:
            raise value
        return value

    # -- the interface --------------------------------------------------------------------------------------
    def start(self, launch: Launch) -> dict[str, Any]:
        return self._call("start", launch, timeout=self.start_timeout_s)

    def poll(self, handles: dict[int, dict[str, Any]]) -> dict[int, Status]:
        return self._call("poll", handles)

    def cancel(self, handle: dict[str, Any]) -> None:
        self._call("cancel", handle, timeout=self.cancel_timeout_s)

    def logs(self, handle: dict[str, Any], tail: int | None = None) -> str:
        return self._call("logs", handle, tail)

    def losses(self) -> list[Loss]:
        return self._call("losses")

    def close(self) -> None:
        self._closed = True
        if not self._lock.acquire(timeout=self.call_timeout_s):
            self._kill("closed while a call was still running")  # do not wait behind a long start
            return
        try:
            if self._proc is None or not self._proc.is_alive():
                self._proc = self._conn = None
                return
            try:
                self._conn.send(("close", ()))
                self._conn.poll(10)
            except (OSError, ValueError, EOFError):
                pass
            proc = self._proc
            self._conn.close()
            self._proc = self._conn = None
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        finally:
            self._lock.release()
