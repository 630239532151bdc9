"""Semantic checks of a scenario and its resolution into a Portfolio.

Structural errors (types, ranges, unknown fields) are caught by the typed models; this pass
finds what needs the whole file: references, ordering, and whether work can ever fit.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import TYPE_CHECKING, Iterable

from .contracts import ReservedCapacity, SpendCommitment
from .fleet import DEFAULT_GPU_MTBF_H, KNOWN_PROVIDERS, Cluster, ClusterSpec, ProviderSpec
from .problems import InvalidInput, Path, Problem
from .scenario import Portfolio, Scenario
from .workloads import BatchWorkload, InferenceWorkload, TrainingWorkload, Workload

if TYPE_CHECKING:
    from ..catalog.loader import Catalog

ALWAYS = date(1970, 1, 1)  # the ramp step of a cluster with constant capacity


def _duplicates(items: Iterable[str], prefix: Path) -> list[Problem]:
    names = list(items)
    seen = Counter(names)
    return [Problem(prefix + (i, "name"), f"duplicate name {n!r}; names must be unique")
            for i, n in enumerate(names) if seen[n] > 1 and names.index(n) != i]


def _resolve_cluster(i: int, spec: ClusterSpec, catalog: "Catalog", providers: dict[str, ProviderSpec],
                     out: list[Problem]) -> Cluster | None:
    at: Path = ("clusters", i)
    gpu = catalog.gpu(spec.gpu)
    if gpu is None:
        out.append(Problem(at + ("gpu",), f"unknown GPU type {spec.gpu!r}; expected one of "
                           f"{', '.join(sorted(catalog.gpus))} or a type declared under gpu_types"))
    prov = providers.get(spec.provider)
    if prov is None:
        out.append(Problem(at + ("provider",), f"unknown provider {spec.provider!r}; expected one of "
                           f"{', '.join(sorted(providers))}"))
    elif prov.regions and spec.region not in prov.regions:
        out.append(Problem(at + ("region",), f"region {spec.region!r} is not among provider "
                           f"{prov.name!r}'s regions ({', '.join(prov.regions)})"))
    if (spec.domains is None) == (spec.ramp is None):
        out.append(Problem(at, "give exactly one of `domains` (constant) or `ramp` (capacity over time)"))
    if spec.ramp is not None:
        if not spec.ramp:
            out.append(Problem(at + ("ramp",), "a ramp needs at least one step"))
        for j in range(1, len(spec.ramp)):
            if spec.ramp[j].date <= spec.ramp[j - 1].date:
                out.append(Problem(at + ("ramp", j, "date"), f"ramp dates must increase: {spec.ramp[j].date} "
                                   f"is not after {spec.ramp[j - 1].date}"))
    price = spec.price_per_gpu_hour
    if spec.offering is not None:
        off = catalog.offerings.get(spec.offering)
        if off is None:
            out.append(Problem(at + ("offering",), f"unknown catalog offering {spec.offering!r} "
                               "(see `gpufleet catalog`)"))
        else:
            if gpu is not None and off.gpu != gpu.name:
                out.append(Problem(at + ("offering",), f"offering {off.id!r} is for {off.gpu}, "
                                   f"but the cluster's GPU is {gpu.name}"))
            if price is None:
                price = off.price_per_gpu_hour
                if price is None:
                    out.append(Problem(at + ("price_per_gpu_hour",), f"offering {off.id!r} has no public "
                                       "price; state price_per_gpu_hour (your assumption)"))
    elif price is None:
        out.append(Problem(at + ("price_per_gpu_hour",), "missing: give price_per_gpu_hour or a catalog offering"))
    if gpu is None or price is None or prov is None or (spec.domains is None) == (spec.ramp is None):
        return None
    size = spec.domain_size or gpu.nvlink_domain_gpus
    usable = spec.usable_gpus_per_domain or size
    if usable > size:
        out.append(Problem(at + ("usable_gpus_per_domain",), f"{usable} usable GPUs exceed the domain size {size}"))
    if spec.fabric_max_gpus is not None and spec.fabric_max_gpus < usable:
        out.append(Problem(at + ("fabric_max_gpus",), f"the fabric ({spec.fabric_max_gpus} GPUs) is smaller "
                           f"than one domain ({usable} GPUs)"))
    if spec.ramp is not None:
        dates = tuple(s.date for s in spec.ramp)
        levels = tuple(s.domains for s in spec.ramp)
    else:
        dates, levels = (ALWAYS,), (spec.domains or 0,)
    rel = spec.reliability
    return Cluster(
        name=spec.name, provider=spec.provider, region=spec.region, gpu=gpu, domain_size=size,
        usable_gpus_per_domain=usable, ramp_dates=dates, ramp_domains=levels,
        fabric_max_gpus=spec.fabric_max_gpus, price_per_gpu_hour=float(price),
        domain_mtbf_h=rel.domain_mtbf_h or DEFAULT_GPU_MTBF_H / usable, repair_h=rel.repair_h,
        cluster_mtbf_h=rel.cluster_mtbf_h, cluster_repair_h=rel.cluster_repair_h, backend=spec.backend,
        area=spec.area or spec.region)


def _check_contracts(s: Scenario, clusters: dict[str, Cluster], providers: dict[str, ProviderSpec],
                     out: list[Problem]) -> None:
    for i, c in enumerate(s.contracts):
        at: Path = ("contracts", i)
        if c.end <= c.start:
            out.append(Problem(at + ("end",), f"contract ends ({c.end}) on or before it starts ({c.start})"))
        if c.provider not in providers:
            out.append(Problem(at + ("provider",), f"unknown provider {c.provider!r}"))
        for j, name in enumerate(c.clusters):
            cl = clusters.get(name)
            if cl is None:
                out.append(Problem(at + ("clusters", j), f"unknown cluster {name!r}"))
            elif cl.provider != c.provider:
                out.append(Problem(at + ("clusters", j), f"cluster {name!r} belongs to provider "
                                   f"{cl.provider!r}, not {c.provider!r}"))
        if isinstance(c, SpendCommitment):
            for name in c.cluster_rates:
                if name not in c.clusters:
                    out.append(Problem(at + ("cluster_rates", name), f"{name!r} is not among the contract's clusters"))
        if isinstance(c, (SpendCommitment, ReservedCapacity)):
            for j, e in enumerate(c.expansions):
                if not (c.start <= e.start < c.end):
                    out.append(Problem(at + ("expansions", j, "start"),
                                       f"expansion starts {e.start}, outside the term {c.start}..{c.end}"))
        if isinstance(c, ReservedCapacity):
            most = sum(clusters[n].max_domains * clusters[n].usable_gpus_per_domain
                       for n in c.clusters if n in clusters)
            want = c.gpus + sum(e.gpus for e in c.expansions)
            if all(n in clusters for n in c.clusters) and want > most:
                out.append(Problem(at + ("gpus",), f"reserves {want} GPUs but the covered clusters never "
                                   f"have more than {most}"))


def _allowed_clusters(w, clusters: dict[str, Cluster], catalog: "Catalog") -> list[Cluster]:
    types = {catalog.canonical(t) for t in w.gpu_types}
    return [c for c in clusters.values() if c.gpu.name in types
            and (w.regions is None or c.region in w.regions or c.area in w.regions)
            and (w.providers is None or c.provider in w.providers)]


def _check_workloads(s: Scenario, clusters: dict[str, Cluster], providers: dict[str, ProviderSpec],
                     catalog: "Catalog", out: list[Problem], fleet_known: bool = True) -> None:
    """References of each workload and, when every cluster resolved (`fleet_known`), whether it can ever
    fit the fleet (a fleet with a broken cluster would only give follow-on errors)."""
    team_names = {t.name for t in s.teams}
    regions = {c.region for c in clusters.values()} | {c.area for c in clusters.values()}
    for i, w in enumerate(s.workloads):
        at: Path = ("workloads", i)
        for t in w.gpu_types:
            if catalog.gpu(t) is None:
                out.append(Problem(at + ("gpu_types", t), f"unknown GPU type {t!r}"))
        if team_names and w.team not in team_names:
            out.append(Problem(at + ("team",), f"unknown team {w.team!r}; expected one of {', '.join(sorted(team_names))}"))
        for j, p in enumerate(w.providers or []):
            if p not in providers:
                out.append(Problem(at + ("providers", j), f"unknown provider {p!r}"))
        if isinstance(w, TrainingWorkload) and (w.tp > w.gpus or w.gpus % w.tp):
            out.append(Problem(at + ("gpus",), f"{w.gpus} GPUs are not a whole number of tensor-parallel "
                               f"groups of {w.tp}"))
        if isinstance(w, TrainingWorkload) and w.deadline is not None and w.deadline <= w.start:
            out.append(Problem(at + ("deadline",), f"deadline {w.deadline} is not after start {w.start}"))
        if isinstance(w, InferenceWorkload):
            for j in range(1, len(w.demand)):
                if w.demand[j].date <= w.demand[j - 1].date:
                    out.append(Problem(at + ("demand", j, "date"), "demand dates must increase"))
        elif isinstance(w, BatchWorkload) and w.end <= w.start:
            out.append(Problem(at + ("end",), f"end {w.end} is not after start {w.start}"))
        if fleet_known:
            _check_fit(w, at, clusters, regions, catalog, out)


def _check_fit(w: Workload, at: Path, clusters: dict[str, Cluster], regions: set[str], catalog: "Catalog",
               out: list[Problem]) -> None:
    """Whether the workload can ever fit the fleet: its regions, domains, fabrics and providers."""
    for j, r in enumerate(w.regions or []):
        if r not in regions:
            out.append(Problem(at + ("regions", j), f"no cluster is in region or area {r!r}"))
    allowed = _allowed_clusters(w, clusters, catalog)
    group = w.tp if isinstance(w, TrainingWorkload) else (
        w.replica_tp if isinstance(w, InferenceWorkload) else w.gpus)
    largest = max((c.usable_gpus_per_domain for c in allowed), default=0)
    if allowed and group > largest:
        field = "gpus" if isinstance(w, BatchWorkload) else "tp"
        out.append(Problem(at + (field,), f"a group of {group} GPUs must sit in one NVLink domain, but "
                           f"the largest allowed domain has {largest} usable GPUs"))
    if not allowed and not any(p.path[:2] == at for p in out):
        out.append(Problem(at + ("gpu_types",), "no cluster offers an allowed GPU type in an allowed "
                           "region and provider"))
    if isinstance(w, TrainingWorkload):
        fabric = max((c.max_gang_gpus for c in allowed), default=0)
        if allowed and w.gpus > fabric:
            out.append(Problem(at + ("gpus",), f"a gang of {w.gpus} GPUs must sit in one cluster fabric, "
                               f"but the largest allowed fabric has {fabric} GPUs"))
    elif isinstance(w, InferenceWorkload):
        for j, d in enumerate(w.demand):
            for r in d.replicas:
                if r not in regions:
                    out.append(Problem(at + ("demand", j, "replicas", r), f"no cluster is in region or area {r!r}"))
        n_prov = len({c.provider for c in allowed})
        if allowed and w.min_providers > n_prov:
            out.append(Problem(at + ("min_providers",), f"needs {w.min_providers} providers but only "
                               f"{n_prov} offer allowed capacity"))


def build_portfolio(s: Scenario, catalog: "Catalog", partial: bool = False) -> Portfolio:
    """Resolve every reference of `s`; raise InvalidInput with all problems found. `partial`: items of the
    file were left out (they failed their own fields), so whether work fits the fleet is not judged."""
    out: list[Problem] = []
    if s.end <= s.start:
        out.append(Problem(("end",), f"scenario ends ({s.end}) on or before it starts ({s.start})"))
    for key, items in (("gpu_types", s.gpu_types), ("providers", s.providers), ("clusters", s.clusters),
                       ("contracts", s.contracts), ("teams", s.teams), ("workloads", s.workloads)):
        out += _duplicates((x.name for x in items), (key,))
    catalog = catalog.with_gpus(s.gpu_types)
    providers = {n: ProviderSpec(name=n, kind=n, display_name=d) for n, d in KNOWN_PROVIDERS.items()}  # type: ignore[arg-type]
    providers.update({p.name: p for p in s.providers})
    clusters: dict[str, Cluster] = {}
    failed: set[str] = set()   # clusters with problems of their own: a reference to one is not one more
    for i, spec in enumerate(s.clusters):
        c = _resolve_cluster(i, spec, catalog, providers, out)
        if c is not None:
            clusters.setdefault(c.name, c)
        else:
            failed.add(spec.name)
    _check_contracts(s, clusters, providers, out)
    _check_workloads(s, clusters, providers, catalog, out, fleet_known=not failed and not partial)
    for i, lim in enumerate(s.policies.concentration_limits):
        if lim.provider is not None and lim.provider not in providers:
            out.append(Problem(("policies", "concentration_limits", i, "provider"), f"unknown provider {lim.provider!r}"))
    for i, o in enumerate(s.failures.outages):
        base = o.target.split("#", 1)[0]
        if base not in providers and base not in clusters:
            out.append(Problem(("failures", "outages", i, "target"), f"{o.target!r} names no provider or cluster"))
    out = [p for p in out if not any(f"unknown cluster {n!r}" in p.message for n in failed)]
    if out:
        raise InvalidInput(out)
    return Portfolio(scenario=s, gpus=catalog.gpus, providers=providers, clusters=clusters,
                     contracts=tuple(s.contracts), teams={t.name: t for t in s.teams},
                     workloads=tuple(s.workloads), policies=s.policies)
