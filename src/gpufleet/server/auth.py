"""Bearer tokens: 256-bit random secrets, stored as SHA-256 digests, each bound to one team or to admin."""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass

from sqlalchemy import Engine as DbEngine
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store import tables as T

PREFIX = "gpf_"


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    team: str | None
    admin: bool

    @property
    def actor(self) -> str:
        return f"admin:{self.name}" if self.admin else f"team:{self.team}:{self.name}"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    # A fast digest is right here: tokens are random 256-bit strings, not passwords, so there is nothing
    # for a slow hash to protect; a lookup by digest keeps every request O(1).
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """Token lookups with a small cache; creating or revoking a token goes through here too."""

    def __init__(self, db: DbEngine, clock):
        self.db = db
        self.clock = clock
        self._cache: dict[str, Principal | None] = {}
        self._lock = threading.Lock()

    def lookup(self, token: str) -> Principal | None:
        d = digest(token)
        hit = self._cache.get(d, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        with Session(self.db) as s:
            row = s.scalars(select(T.Token).where(T.Token.digest == d, T.Token.revoked_at.is_(None))).first()
            p = Principal(row.id, row.name, row.team, row.admin) if row is not None else None
        with self._lock:
            if len(self._cache) > 100_000:
                self._cache.clear()
            if p is not None:  # unknown tokens are not cached, so guessing cannot fill memory
                self._cache[d] = p
        return p

    def create(self, name: str, team: str | None, admin: bool, token: str | None = None) -> tuple[str, int]:
        token = token or new_token()
        with Session(self.db) as s, s.begin():
            row = T.Token(digest=digest(token), team=team, admin=admin, name=name, created_at=self.clock())
            s.add(row)
            s.flush()
            tid = row.id
        return token, tid

    def ensure_admin(self, token: str, name: str = "bootstrap") -> str:
        """Store the admin token given at start (GPUFLEET_ADMIN_TOKEN) unless it is already known.

        A bootstrap token that was revoked is honoured again (re-issued) when no other admin token is live:
        the recovery path for a server nobody can administer. Returns "stored", "known", "reissued" or
        "revoked" (it stays revoked while another admin token is live)."""
        d = digest(token)
        with Session(self.db) as s, s.begin():
            row = s.scalars(select(T.Token).where(T.Token.digest == d)).first()
            if row is None:
                s.add(T.Token(digest=d, team=None, admin=True, name=name, created_at=self.clock()))
                return "stored"
            if row.revoked_at is None:
                return "known"
            if not row.admin or self._live_admins(s):
                return "revoked"
            row.revoked_at = None
            s.add(T.Event(at=self.clock(), actor="server", kind="token_reissued", team=None, job_id=None,
                          message=f"admin token {row.id} ({row.name}) re-issued at start: no other admin "
                                  f"token was live"))
        with self._lock:
            self._cache.clear()
        return "reissued"

    @staticmethod
    def _live_admins(s: Session, but: int | None = None) -> list[int]:
        q = select(T.Token.id).where(T.Token.admin.is_(True), T.Token.revoked_at.is_(None))
        if but is not None:
            q = q.where(T.Token.id != but)
        return list(s.scalars(q.with_for_update()))  # FOR UPDATE: two revokes cannot both see another admin

    def revoke(self, token_id: int) -> str:
        """Revoke a live token: "revoked", "missing", or "last_admin" (refused: nobody could administer)."""
        with self._lock, Session(self.db) as s, s.begin():
            row = s.get(T.Token, token_id)
            if row is None or row.revoked_at is not None:
                return "missing"
            if row.admin and not self._live_admins(s, but=token_id):
                return "last_admin"
            row.revoked_at = self.clock()
            self._cache.clear()
        return "revoked"
