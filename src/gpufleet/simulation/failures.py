"""Failures: scheduled outages (`aws@2026-06-01T00:00/48h`) and random failures from reliability figures."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from ..model.scenario import Portfolio

_SPEC = re.compile(r"^(?P<target>[A-Za-z0-9][A-Za-z0-9._:/-]*(?:#\d+)?)@(?P<start>[0-9T:\-+Z .]+)/(?P<dur>\d+(?:\.\d+)?)(?P<unit>[smhd])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class Outage:
    """`target` is a provider, a cluster, or one domain written `cluster#index`."""

    target: str
    kind: str  # provider | cluster | domain
    start_s: float
    duration_s: float


class OutageError(ValueError):
    pass


def _kind(target: str, p: Portfolio, declared: str | None = None) -> str:
    base, sep, idx = target.partition("#")
    if sep:
        if base not in p.clusters or not idx.isdigit():
            raise OutageError(f"{target!r}: expected CLUSTER#INDEX with a known cluster")
        if int(idx) >= p.clusters[base].max_domains:
            raise OutageError(f"{target!r}: cluster {base} has {p.clusters[base].max_domains} domains")
        return "domain"
    if base in p.clusters and declared != "provider":
        return "cluster"
    if base in p.providers:
        return "provider"
    raise OutageError(f"{target!r} names no provider or cluster of this scenario")


def parse_outage(spec: str, p: Portfolio) -> Outage:
    """Parse `TARGET@START/DURATION`, e.g. `aws@2026-06-01T00:00/48h` or `aws-use1-gb200#12@2026-07-01/6h`."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise OutageError(f"{spec!r}: expected TARGET@START/DURATION such as aws@2026-06-01T00:00/48h "
                          "(duration unit s, m, h or d)")
    try:
        start = datetime.fromisoformat(m["start"].strip())
    except ValueError:
        raise OutageError(f"{spec!r}: {m['start']!r} is not an ISO date or date-time") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    duration = float(m["dur"]) * _UNIT_S[m["unit"]]
    if duration <= 0:
        raise OutageError(f"{spec!r}: the duration must be positive")
    return Outage(m["target"], _kind(m["target"], p), start.timestamp(), duration)


def scenario_outages(p: Portfolio) -> list[Outage]:
    out = []
    for o in p.scenario.failures.outages:
        start = o.start if o.start.tzinfo else o.start.replace(tzinfo=timezone.utc)
        out.append(Outage(o.target, o.kind or _kind(o.target, p), start.timestamp(), o.duration_h * 3600.0))
    return out
