"""One server per database: the control loop holds its database for as long as it runs.

Two servers on one database would both number rows and fight, so the second refuses to start and names the
first. The hold is a lock the operating system or the database drops by itself when its holder dies (even
under kill -9), so a crashed server never blocks its restart:
- SQLite: an exclusive `flock` on `<database file>.lock`, which also carries who holds it (host, pid, since).
  The standard library's flock is all this needs: the kernel releases it with the holder's last descriptor.
- PostgreSQL: a session advisory lock on a connection kept open for the purpose, whose `application_name`
  says who holds it; the database releases the lock when that session ends.
An in-memory SQLite database belongs to its one process and needs no hold.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine as DbEngine
from sqlalchemy import text

LOCK_KEY = 0x6770_666C_6565_74  # "gpfleet": the advisory lock's key, the same for every gpufleet server


class HeldElsewhere(RuntimeError):
    """Another live server holds the database."""


class Hold(Protocol):
    def release(self) -> None: ...


def _who() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


def describe(who: dict[str, Any]) -> str:
    since = datetime.fromtimestamp(float(who.get("since") or 0), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"host {who.get('host', '?')}, pid {who.get('pid', '?')}, since {since}"


class FileHold:
    def __init__(self, path: Path):
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                who = json.loads(os.read(fd, 4096) or b"{}")
            except ValueError:
                who = {}
            os.close(fd)
            raise HeldElsewhere(f"another gpufleet server holds {path.with_suffix('')} ({describe(who)}); "
                                f"run one server per database") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_who()).encode(), 0)
        self.fd: int | None = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


class AdvisoryHold:
    def __init__(self, db: DbEngine):
        who = _who()
        self.conn: Any = db.connect()
        # application_name is at most 63 bytes: keep the pid and time, shorten the host
        name = f"gpufleet {who['pid']} {int(who['since'])} {who['host']}"[:63]
        self.conn.execute(text("SELECT set_config('application_name', :n, false)"), {"n": name})
        got = self.conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
        self.conn.commit()
        if not got:
            holder = self._holder()
            self.conn.close()
            raise HeldElsewhere(f"another gpufleet server holds this database ({holder}); "
                                f"run one server per database")

    def _holder(self) -> str:
        row = self.conn.execute(text(
            "SELECT a.application_name, a.client_addr, a.pid FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = :k"), {"k": LOCK_KEY}).first()
        if row is None:
            return "its session could not be read"
        parts = (row[0] or "").split(" ", 3)
        if len(parts) == 4 and parts[0] == "gpufleet" and parts[1].isdigit() and parts[2].isdigit():
            return describe({"host": parts[3], "pid": int(parts[1]), "since": float(parts[2])})
        return f"PostgreSQL session {row[2]} from {row[1] or 'a local socket'}"

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                self.conn.commit()
            finally:
                self.conn.close()  # ending the session drops the lock in any case
                self.conn = None


class NoHold:
    def release(self) -> None:
        pass


def hold(db: DbEngine) -> Hold:
    """Hold the database for this server, or raise HeldElsewhere naming the live holder."""
    url = db.url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return NoHold()
        return FileHold(Path(url.database + ".lock"))
    if url.get_backend_name() == "postgresql":
        return AdvisoryHold(db)
    return NoHold()
