"""The fleet as the engine sees it: per-cluster domains, health, usage counters and allocations.

Everything a filter or scorer reads is a counter kept up to date by commit/release, so a decision never
scans the history. Memory is proportional to the fleet (domains) plus the work running now.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from ..model.contracts import OnDemand, ReservedCapacity, SpendCommitment
from ..model.fleet import Cluster
from ..model.scenario import Portfolio
from .domains import Domains
from .guide import Guide
from .request import Allocation


def to_seconds(d: date | datetime) -> float:
    if isinstance(d, datetime):
        return (d if d.tzinfo else d.replace(tzinfo=timezone.utc)).timestamp()
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()


def to_date(t: float) -> date:
    return datetime.fromtimestamp(t, tz=timezone.utc).date()


class ContractState:
    """A contract's terms in engine units (seconds, USD) and its running usage."""

    __slots__ = ("name", "kind", "clusters", "start", "end", "rate", "rates", "commitment_usd",
                 "reserved", "discount", "spec", "used_gpus", "burn_usd_per_h", "spent_usd")

    def __init__(self, c: SpendCommitment | ReservedCapacity | OnDemand):
        self.spec = c
        self.name, self.kind, self.clusters = c.name, c.kind, tuple(c.clusters)
        self.start, self.end = to_seconds(c.start), to_seconds(c.end)
        self.rate = getattr(c, "price_per_gpu_hour", 0.0)
        self.rates = dict(getattr(c, "cluster_rates", {}) or {})
        self.commitment_usd = getattr(c, "commitment_usd", 0.0)
        self.reserved = 0  # reserved GPUs in force now (set by FleetState.set_time)
        self.discount = getattr(c, "discount", 0.0)
        self.used_gpus = 0          # GPUs allocated now on the covered clusters
        self.burn_usd_per_h = 0.0   # those GPUs at the contract rate
        self.spent_usd = 0.0        # input: what has been drawn down so far (burn-down state)

    def rate_for(self, cluster: str) -> float:
        return self.rates.get(cluster, self.rate)

    def in_force(self, now: float) -> bool:
        return self.start <= now < self.end


class ClusterState:
    __slots__ = ("spec", "index", "name", "provider", "region", "area", "gpu", "domains", "up", "allocated",
                 "contracts", "fabric_max", "list_price", "cost_group", "cost_terms", "holders", "class_keys",
                 "kind_used")

    def __init__(self, spec: Cluster, index: int, domains_cls: type = Domains):
        self.spec = spec
        self.index = index
        self.name, self.provider, self.region, self.gpu = spec.name, spec.provider, spec.region, spec.gpu.name
        self.area = spec.area
        self.domains = domains_cls(spec.max_domains, spec.usable_gpus_per_domain, 0)
        self.up = True
        self.allocated = 0
        self.contracts: list[ContractState] = []
        self.fabric_max = spec.fabric_max_gpus
        self.list_price = spec.price_per_gpu_hour
        self.cost_group = -1  # clusters with the same contracts, rates and list price cost the same
        self.cost_terms: tuple[tuple[int, ContractState, float], ...] = ()  # (term index, contract, rate here)
        self.holders: list[set[str] | None] = [None] * spec.max_domains  # allocations on each domain
        self.class_keys: dict[str, tuple[str, str]] = {"all": ("all", self.provider)}
        self.kind_used: dict[str, int] = {}  # GPUs allocated here per workload class

    @property
    def capacity(self) -> int:
        """GPUs in live domains (active under the ramp and not failed)."""
        return self.domains.live_domains * self.domains.usable

    @property
    def free(self) -> int:
        return self.domains.free_total if self.up else 0


class FleetState:
    """Mutable state of the fleet; changed only through the engine's commit, release and event methods."""

    def __init__(self, portfolio: Portfolio, now: float, domains_cls: type = Domains):
        self.portfolio = portfolio
        self.clusters = [ClusterState(c, i, domains_cls) for i, c in enumerate(portfolio.clusters.values())]
        self.by_name = {c.name: c for c in self.clusters}
        self.contracts = [ContractState(c) for c in portfolio.contracts]
        for k in self.contracts:
            for name in k.clusters:
                self.by_name[name].contracts.append(k)
        terms: dict[tuple[str, float], int] = {}  # distinct (contract, rate) pairs across the fleet
        for cs in self.clusters:
            cs.cost_terms = tuple((terms.setdefault((k.name, k.rate_for(cs.name)), len(terms)), k, k.rate_for(cs.name))
                                  for k in cs.contracts)
        self.cost_term_count = len(terms)
        groups: dict[tuple, int] = {}
        for cs in self.clusters:
            key = (tuple(t for t, _, _ in cs.cost_terms), cs.list_price)
            cs.cost_group = groups.setdefault(key, len(groups))
        self.providers = sorted({cs.provider for cs in self.clusters})
        self.allocations: dict[str, Allocation] = {}
        self.team_used: dict[str, int] = {}
        self.cohort_used: dict[str, int] = {}
        self.class_used: dict[str, int] = {"all": 0}
        self.class_provider_used: dict[tuple[str, str], int] = {}
        self.key_used: dict[str, int] = {}                       # GPUs per spread key (one service)
        self.key_provider_used: dict[tuple[str, str], int] = {}
        self.providers_down: set[str] = set()
        self.workload_used: dict[tuple[str, int], int] = {}      # (workload, cluster index) -> GPUs
        self.guide: Guide | None = None                          # the plan the `plan` scorer follows
        self.cluster_allocs: list[dict[str, Allocation]] = [{} for _ in self.clusters]
        self.preemptible_prio: list[dict[int, int]] = [{} for _ in self.clusters]  # priority -> GPUs
        teams = portfolio.teams
        self.quota = {t.name: t.quota_gpus for t in teams.values()}
        self.borrow_limit = {t.name: t.borrowing_limit_gpus for t in teams.values()}
        self.cohort_of = {t.name: t.cohort for t in teams.values()}
        self.cohort_quota: dict[str, int] = {}
        for t in teams.values():
            if t.cohort:
                self.cohort_quota[t.cohort] = self.cohort_quota.get(t.cohort, 0) + t.quota_gpus
        self.limits = [(lim.workload_class, lim.provider, lim.max_share)
                       for lim in portfolio.policies.concentration_limits]
        self.changes: list[int] = []   # indices of clusters changed, in order (read by the engine's caches)
        self.changes_base = 0          # absolute position of changes[0]
        self.now = now
        self.set_time(now)

    # -- time: ramps and contracts in force ---------------------------------------------------------
    def set_time(self, now: float) -> list[str]:
        """Advance the clock; apply ramp levels. Returns allocations on domains that ceased to exist."""
        self.now = now
        day = to_date(now)
        lost: list[str] = []
        for cs in self.clusters:
            target = cs.spec.domains_at(day)
            if target == cs.domains.active:
                continue
            if target < cs.domains.active:
                for d in range(target, cs.domains.active):
                    lost.extend(cs.holders[d] or ())
            cs.domains.set_active(target)
            self.touch(cs)
        for k in self.contracts:
            k.reserved = k.spec.gpus_at(day) if isinstance(k.spec, ReservedCapacity) else 0
        return sorted(set(lost))

    def touch(self, cs: ClusterState) -> None:
        """Record that `cs` changed (its domains or health); caches keyed on it must be refreshed."""
        self.changes.append(cs.index)
        if len(self.changes) > 200_000:
            drop = len(self.changes) // 2
            del self.changes[:drop]
            self.changes_base += drop

    @property
    def change_position(self) -> int:
        return self.changes_base + len(self.changes)

    # -- usage counters (called by the engine on commit and release) --------------------------------
    def count(self, a: Allocation, cs: ClusterState, sign: int) -> None:
        """Add (sign=+1) or remove (-1) an allocation on `cs` from every counter filters and scorers read."""
        req, n = a.request, a.request.gpus * sign
        cs.allocated += n
        team = req.team
        self.team_used[team] = self.team_used.get(team, 0) + n
        cohort = self.cohort_of.get(team)
        if cohort:
            self.cohort_used[cohort] = self.cohort_used.get(cohort, 0) + n
        kind = req.kind
        self.class_used[kind] = self.class_used.get(kind, 0) + n
        self.class_used["all"] += n
        used = self.class_provider_used
        key = cs.class_keys.get(kind)
        if key is None:
            key = cs.class_keys[kind] = (kind, cs.provider)
        used[key] = used.get(key, 0) + n
        key = cs.class_keys["all"]
        used[key] = used.get(key, 0) + n
        cs.kind_used[kind] = cs.kind_used.get(kind, 0) + n
        if req.workload is not None:
            wk = (req.workload, cs.index)
            self.workload_used[wk] = self.workload_used.get(wk, 0) + n
        if req.spread_key is not None:
            self.key_used[req.spread_key] = self.key_used.get(req.spread_key, 0) + n
            kp = (req.spread_key, cs.provider)
            self.key_provider_used[kp] = self.key_provider_used.get(kp, 0) + n
        for _, k, rate in cs.cost_terms:
            k.used_gpus += n
            k.burn_usd_per_h += n * rate
        allocs = self.cluster_allocs[cs.index]
        holders = cs.holders
        rid = req.id
        if sign > 0:
            allocs[rid] = a
            for d, _ in a.parts:
                h = holders[d]
                if h is None:
                    holders[d] = {rid}
                else:
                    h.add(rid)
        else:
            allocs.pop(rid, None)
            for d, _ in a.parts:
                h = holders[d]
                if h is not None:
                    h.discard(rid)
                    if not h:
                        holders[d] = None
        if req.preemptible:
            prio = self.preemptible_prio[cs.index]
            left = prio.get(req.priority, 0) + n
            if left:
                prio[req.priority] = left
            else:
                prio.pop(req.priority, None)

    def allocations_on(self, cluster: ClusterState, domain: int | None = None) -> list[str]:
        if domain is None:
            return sorted(self.cluster_allocs[cluster.index])
        return sorted(cluster.holders[domain] or ())
