"""The dashboard's time series: `GET /v1/history` read back over a month of samples at fleet scale.

    python bench/history.py                     # 24 clusters, 20 teams, 3 commitments; 30 days; SQLite
    python bench/history.py --series 200 --json

The worst case the sampler allows: every series changes at every sample (each 5 s), the last hour kept whole,
the rest of the last day thinned to a row per series per minute and the 29 days before to one per ten minutes,
as the server leaves them. Measured:
reading 240 points over 30 days, 7 days and 6 hours (medians), against a baseline measured in the same run:
the same answer from every row in the window, read and carried forward in Python (the first version of
`history.read`). Both must give the same series (checked).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spend import timed  # noqa: E402

from gpufleet.server import history  # noqa: E402
from gpufleet.store import tables as T  # noqa: E402

DAY = 86_400.0


def fill(db: Any, series: int, days: int, now: float) -> int:
    """Rows as the sampler and its thinning leave them when every series changes each sample."""
    names = [("cluster", f"c{i}") for i in range(series)]
    times = [now - days * DAY + k * 600.0 for k in range(int((days - 1) * DAY / 600))]
    times += [now - DAY + k * 60.0 for k in range(int((DAY - 3600) / 60))]
    times += [now - 3600 + k * 5.0 for k in range(int(3600 / 5))]
    n = 0
    with Session(db) as s, s.begin():
        for j in range(0, len(times), 500):
            rows = [{"at": t, "kind": kind, "name": name, "provider": "p", "gpus": 1000, "used": (k * 7 + i) % 1000,
                     "failed": 0, "queued": None, "running": None, "usd": None}
                    for k, t in enumerate(times[j:j + 500], start=j) for i, (kind, name) in enumerate(names)]
            s.execute(insert(T.Sample), rows)
            n += len(rows)
    return n


def full_scan(s: Session, w: history.Window) -> dict[str, Any]:
    """Baseline: every row in the window through Python, each point the last row at or before it."""
    S = T.Sample
    n = w.points
    step = (w.until - w.since) / (n - 1)
    times = [w.since + i * step for i in range(n)]
    before = select(func.max(S.id)).where(S.at <= w.since).group_by(S.kind, S.name)
    q = select(S).where(S.id.in_(before) | (S.at > w.since) & (S.at <= w.until)).order_by(S.at, S.id)
    now: dict[tuple, dict] = {}
    out: dict[tuple, dict] = {}
    rows = iter(s.scalars(q))
    row = next(rows, None)
    for i, t in enumerate(times):
        while row is not None and row.at <= t:
            now[(row.kind, row.name)] = {c: getattr(row, c) for c in history.COLUMNS if getattr(row, c) is not None}
            row = next(rows, None)
        for key, v in now.items():
            for c, x in v.items():
                out.setdefault(key, {}).setdefault(c, [None] * n)[i] = x
    return {key: cols for key, cols in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=47, help="24 clusters + 20 teams + 3 commitments")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    now = 1_800_000_000.0
    with tempfile.TemporaryDirectory() as d:
        db = create_engine(f"sqlite:///{Path(d) / 'h.db'}")
        T.Base.metadata.create_all(db)
        rows = fill(db, a.series, a.days, now)
        results = []
        for label, span in (("30 days", 30 * DAY), ("7 days", 7 * DAY), ("6 hours", 6 * 3600.0)):
            w = history.Window(now - span, now, 240)
            with Session(db) as s:
                fast, got = timed(lambda: history.read(s, w, None), a.repeat)
                slow, want = timed(lambda: full_scan(s, w), a.repeat)
            mine = {("cluster", c["name"]): {k: c[k] for k in ("gpus", "used", "failed")} for c in got["clusters"]}
            assert mine == want, f"{label}: the two readings differ"
            results.append({"range": label, "read_s": fast, "full_scan_s": slow, "speedup": slow / fast})
    doc = {"rows": rows, "series": a.series, "days": a.days, "points": 240, "results": results}
    if a.json:
        print(json.dumps(doc, indent=1))
        return
    print(f"{rows:,} rows, {a.series} series, {a.days} days (last hour every 5 s, then 1 min, then 10 min)")
    for r in results:
        print(f"  {r['range']:>8}: read {r['read_s'] * 1000:8.1f} ms   full scan {r['full_scan_s'] * 1000:8.1f} ms"
              f"   x{r['speedup']:.1f}")


if __name__ == "__main__":
    sys.exit(main())
