"""What HTTP readers see: a snapshot the control loop publishes after each commit.

Readers never touch the live engine (the control thread mutates it); they read the last published
`Snapshot`, an immutable value swapped in whole, so a reader sees one consistent moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from ..model.scenario import Portfolio

if TYPE_CHECKING:
    from .control import Control


@dataclass(frozen=True)
class Snapshot:
    portfolio: Portfolio | None = None
    clusters: tuple[Mapping[str, Any], ...] = ()
    team_used: Mapping[str, int] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=lambda: {"queued": 0, "active_placements": 0, "gpus_free": 0})
    domains: tuple[Mapping[str, Any], ...] = ()       # NVLink-domain occupancy of the largest clusters
    shares: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # class -> provider -> GPUs

DOMAIN_CLUSTERS = 4   # how many of the largest clusters the dashboard shows domain by domain


def cluster_gpus(cs: Any, st: Any) -> dict[str, int]:
    """A cluster's GPUs now: in service (ramped in), allocated, and failed (in down domains, or all of it when
    the cluster or its provider is down)."""
    d = cs.domains
    active = d.active * d.usable
    up = cs.up and cs.provider not in st.providers_down
    failed = active if not up else sum(1 for x in d.down if x < d.active) * d.usable
    return {"gpus": active, "used": cs.allocated, "failed": failed}


def _domains(st: Any) -> tuple[Mapping[str, Any], ...]:
    big = sorted(st.clusters, key=lambda cs: (-len(cs.domains.free) * cs.domains.usable, cs.name))[:DOMAIN_CLUSTERS]
    return tuple(MappingProxyType({
        "cluster": cs.name, "provider": cs.provider, "usable": cs.domains.usable,
        "free": tuple(cs.domains.free[:cs.domains.active]), "down": tuple(sorted(cs.domains.down)),
        "up": cs.up and cs.provider not in st.providers_down}) for cs in big)


def _shares(st: Any) -> Mapping[str, Mapping[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for cs in st.clusters:
        for cls, n in cs.kind_used.items():
            if n:
                by = out.setdefault(cls, {})
                by[cs.provider] = by.get(cs.provider, 0) + n
    return MappingProxyType(out)


def publish(c: Control) -> Snapshot:
    eng = c.engine
    if eng is None:
        return Snapshot(portfolio=c.portfolio, gauges={"queued": len(c.works), "active_placements": 0,
                                                       "gpus_free": 0})
    st = eng.state
    clusters = tuple(MappingProxyType({
        "name": cs.name, "provider": cs.provider, "region": cs.spec.region, "gpu": cs.spec.gpu.name,
        "backend": c.dispatch.backend_of(cs.spec.backend), "up": cs.up and cs.provider not in st.providers_down,
        "gpus": cs.capacity, "free_gpus": cs.domains.free_total, "domains_down": sorted(cs.domains.down),
        "used_gpus": cs.allocated, "failed_gpus": cluster_gpus(cs, st)["failed"]})
        for cs in st.clusters)
    queued = c.sched.queued if c.sched is not None else 0
    gauges = {"queued": queued, "active_placements": len(c.dispatch.active),
              "gpus_free": sum(x["free_gpus"] for x in clusters)}
    return Snapshot(portfolio=c.portfolio, clusters=clusters, team_used=MappingProxyType(dict(st.team_used)),
                    gauges=gauges, domains=_domains(st), shares=_shares(st))
