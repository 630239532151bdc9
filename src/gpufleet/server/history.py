"""The fleet over time: sampled by the control loop, read back down-sampled for the dashboard's plots.

Each scheduling turn (at most every `every_s` seconds of the loop's clock) the loop takes the value of every
series (each cluster's live, used and failed GPUs; each team's GPUs in use and its queued and running jobs;
each spend commitment's dollars drawn) and writes a row only for the series whose value changed, so an idle
fleet writes nothing. A series is a step function: its value holds until its next row. Rows older than a day
are thinned to the last one per series in each ten minutes, so a long-running server keeps a bounded table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, case, cast, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from ..scheduling.work import QUEUED, RUNNING
from ..store import tables as T
from .snapshot import cluster_gpus

if TYPE_CHECKING:
    from .control import Control

COLUMNS = ("gpus", "used", "failed", "queued", "running", "usd")
Key = tuple[str, str]   # (kind, name)


def _clusters(c: Control) -> dict[Key, dict[str, Any]]:
    eng = c.engine
    if eng is None:
        return {}
    st = eng.state
    out: dict[Key, dict[str, Any]] = {}
    for cs in st.clusters:
        out[("cluster", cs.name)] = {"provider": cs.provider, **cluster_gpus(cs, st)}
    return out


def _teams(c: Control) -> dict[Key, dict[str, Any]]:
    eng = c.engine
    used = dict(eng.state.team_used) if eng is not None else {}
    out = {("team", t): {"used": u, "queued": 0, "running": 0} for t, u in used.items()}
    for w in c.works.values():
        v = out.setdefault(("team", w.team), {"used": 0, "queued": 0, "running": 0})
        if w.state == QUEUED:
            v["queued"] += 1
        elif w.state == RUNNING:
            v["running"] += 1
    return out


def _contracts(c: Control) -> dict[Key, dict[str, Any]]:
    eng = c.engine
    if eng is None:
        return {}
    return {("contract", k.name): {"provider": k.spec.provider, "usd": round(k.spent_usd, 2)}
            for k in eng.state.contracts if k.kind == "spend_commitment"}


@dataclass
class Sampler:
    every_s: float = 5.0            # at most one sample per this many seconds of the loop's clock
    # Older rows are thinned to one per series per window: after an hour to a minute, after a day to ten
    # minutes (a month of a fast-changing fleet reads in well under a second: bench/history.py).
    tiers: tuple[tuple[float, float], ...] = ((3600.0, 60.0), (86_400.0, 600.0))
    last_at: float = float("-inf")
    last_thin: float = float("-inf")
    pending: bool = False           # a turn came too soon after the last sample: sample at the next poll
    written: dict[Key, dict[str, Any]] = field(default_factory=dict)

    def due(self, now: float) -> bool:
        """A skipped sample is owed and may be taken now (the loop's idle poll asks)."""
        return self.pending and now - self.last_at >= self.every_s

    def record(self, s: Session, c: Control, now: float) -> int:
        """Write the series that changed since the last sample; how many rows were written."""
        if now - self.last_at < self.every_s:
            self.pending = True
            return 0
        self.last_at, self.pending = now, False
        values = _clusters(c) | _teams(c) | _contracts(c)
        rows = []
        for key, v in values.items():
            if self.written.get(key) != v:
                self.written[key] = v
                rows.append({"at": now, "kind": key[0], "name": key[1], "provider": v.get("provider"),
                             **{col: v.get(col) for col in COLUMNS}})
        for key in [k for k in self.written if k not in values and k[0] == "cluster"]:
            del self.written[key]   # a cluster gone from the portfolio: it ends at zero
            rows.append({"at": now, "kind": key[0], "name": key[1], "provider": None, "gpus": 0, "used": 0,
                         "failed": 0, "queued": None, "running": None, "usd": None})
        if rows:
            s.execute(insert(T.Sample), rows)
        if now - self.last_thin >= 3600.0:
            self.last_thin = now
            for after_s, every_s in self.tiers:
                thin(s, now - after_s, every_s)
        return len(rows)


def thin(s: Session, before: float, every_s: float) -> None:
    """Keep, of the rows before `before`, the last of each series in each `every_s` window."""
    S = T.Sample
    sqlite = s.get_bind().dialect.name == "sqlite"   # it has no floor(); the times are positive
    window = cast(S.at / every_s, Integer) if sqlite else func.floor(S.at / every_s)
    keep = select(func.max(S.id)).where(S.at < before).group_by(S.kind, S.name, window)
    s.execute(delete(S).where(S.at < before, S.id.not_in(keep)))


def _carried_in(s: Session, since: float, scope: list[Any]) -> list[int]:
    """Each series' last row at or before `since`: one walk down the (kind, name, at) index per series."""
    S = T.Sample
    series = s.execute(select(S.kind, S.name).where(*scope).group_by(S.kind, S.name)).all()
    out = []
    for kind, name in series:
        rid = s.scalar(select(S.id).where(S.kind == kind, S.name == name, S.at <= since)
                       .order_by(S.at.desc(), S.id.desc()).limit(1))
        if rid is not None:
            out.append(rid)
    return out


def _ceil(s: Session, x: Any) -> Any:
    """ceil(x) for x > 0, in SQL: SQLite has no ceil() unless built with its math functions."""
    if s.get_bind().dialect.name != "sqlite":
        return func.ceil(x)
    whole = cast(x, Integer)          # truncates: floor for x > 0
    return whole + case((x > whole, 1), else_=0)


@dataclass(frozen=True)
class Window:
    since: float
    until: float
    points: int


def read(s: Session, w: Window, teams: set[str] | None) -> dict[str, Any]:
    """Every series at `points` evenly spaced times in [since, until], each the value then in force (None
    before its first sample), with the team series limited to `teams` (None: all). Cluster and contract
    series are the portfolio's, which every token may read."""
    S = T.Sample
    n = max(2, w.points)
    step = (w.until - w.since) / (n - 1)
    times = [w.since + i * step for i in range(n)]
    scope = [] if teams is None else [(S.kind != "team") | S.name.in_(sorted(teams))]
    # Of the rows in (t[i-1], t[i]] only the last of each series decides the value at t[i]: the database
    # keeps those (a row per series per point at most), plus each series' last row before the window.
    point = _ceil(s, (S.at - w.since) / step) if step > 0 else literal(0)
    last = (select(func.max(S.id)).where(S.at > w.since, S.at <= w.until, *scope)
            .group_by(S.kind, S.name, point))
    ids = list(s.scalars(last)) + _carried_in(s, w.since, scope)
    q = select(S).where(S.id.in_(ids)).order_by(S.at, S.id)
    now: dict[Key, dict[str, Any]] = {}
    meta: dict[Key, str | None] = {}
    out: dict[Key, dict[str, list[Any]]] = {}
    rows = iter(s.scalars(q))
    row = next(rows, None)
    for i, t in enumerate(times):
        while row is not None and row.at <= t:
            key = (row.kind, row.name)
            now[key] = {col: getattr(row, col) for col in COLUMNS if getattr(row, col) is not None}
            meta[key] = row.provider or meta.get(key)
            row = next(rows, None)
        for key, v in now.items():
            cols = out.setdefault(key, {})
            for col, x in v.items():
                cols.setdefault(col, [None] * n)[i] = x
    grouped: dict[str, list[dict[str, Any]]] = {"clusters": [], "teams": [], "contracts": []}
    for (kind, name), cols in sorted(out.items()):
        grouped[kind + "s"].append({"name": name, "provider": meta.get((kind, name)), **cols})
    return {"t": times, "step_s": step, **grouped}
