"""The placement engine: the one scheduling core every other part calls.

    decide(request)  -> Decision   (read-only: filters, scorers, select; explains on request)
    commit(decision) -> Allocation (the one door that changes state; idempotent)
    release(id)                    (exact inverse of commit; idempotent)
"""

from __future__ import annotations

from ..model.scenario import Portfolio
from .domains import Domains
from .filters import CLUSTER_FILTERS, FLEET_FILTERS, STATIC_FILTERS, cap_reservation, concentration, quota
from .guide import Guide
from .preempt import choose_victims
from .profiles import Profile, get_profile
from .request import Allocation, Decision, Reject, Request, Verdict
from .scorers import CLUSTER_SCOPED, SCORERS
from .state import ClusterState, FleetState

MAX_SHAPES = 20_000


class ShapeCache:
    """What one request shape sees: its candidates, and for each the cached cluster filter verdict and
    weighted cluster-scoped score, valid up to `position` in the fleet's change log (Borg-style caching)."""

    __slots__ = ("cands", "static_rejects", "slot", "rejects", "partial", "position")

    def __init__(self, cands: list[ClusterState], static_rejects: list[Verdict]):
        self.cands = cands
        self.static_rejects = static_rejects
        self.slot = {cs.index: j for j, cs in enumerate(cands)}
        self.rejects: list[Reject | None] = [None] * len(cands)
        self.partial = [0.0] * len(cands)
        self.position = -1  # nothing computed yet


class Engine:
    def __init__(self, portfolio: Portfolio, now: float, profile: str | Profile | None = None,
                 domains_cls: type = Domains):
        prof = profile if isinstance(profile, Profile) else get_profile(profile or portfolio.policies.default_profile)
        self.profile = prof
        weights = prof.normalized()
        # The pipeline, top to bottom:
        self.state = FleetState(portfolio, now, domains_cls)  # live state; counters kept by commit/release
        self.static = list(STATIC_FILTERS.values())           # 1. candidates: GPU type, place, topology (per shape)
        self.cluster_filters = list(CLUSTER_FILTERS.values())  # 2. health, capacity (cached until the cluster changes)
        self.cluster_scorers = [(n, SCORERS[n], w) for n, w in weights if n in CLUSTER_SCOPED]  # 3. (cached too)
        self.fleet_filters = list(FLEET_FILTERS.values())      # 4. concentration caps (every decision)
        self.fleet_scorers = [(n, SCORERS[n], w) for n, w in weights if n not in CLUSTER_SCOPED]  # 5. cost, spread
        # 6. select the highest total; ties go to the cluster listed first in the scenario.
        self._shapes: dict[tuple, ShapeCache] = {}

    # -- 1. candidates (static verdicts cached per request shape) -------------------------------------
    def _shape(self, req: Request) -> ShapeCache:
        hit = self._shapes.get(req.shape)
        if hit is not None:
            return hit
        ok, rejected = [], []
        for cs in self.state.clusters:
            for f in self.static:
                r = f(cs, req, self.state)
                if r is not None:
                    rejected.append(Verdict(cs.name, r))
                    break
            else:
                ok.append(cs)
        if len(self._shapes) >= MAX_SHAPES:
            self._shapes.clear()
        entry = self._shapes[req.shape] = ShapeCache(ok, rejected)
        return entry

    def candidates(self, req: Request) -> list[ClusterState]:
        """The clusters this request's static filters allow (its type, place and topology)."""
        return self._shape(req).cands

    # -- 2-3. cluster verdicts and cluster-scoped scores ---------------------------------------------
    def _local(self, cands: list[ClusterState], req: Request, scores: list[dict] | None = None
               ) -> tuple[list[Reject | None], list[float]]:
        """Cluster filters and weighted cluster-scoped scores for `cands`, in one batch."""
        rejects: list[Reject | None] = [None] * len(cands)
        partial = [0.0] * len(cands)
        pos = {cs.index: j for j, cs in enumerate(cands)}
        alive = cands
        for f in self.cluster_filters:
            if not alive:
                break
            alive, rejected = f(alive, req, self.state)
            for cs, r in rejected:
                rejects[pos[cs.index]] = r
        if alive:
            slots = [pos[cs.index] for cs in alive]
            for name, fn, w in self.cluster_scorers:
                for j, s in zip(slots, fn(alive, req, self.state, {})):
                    partial[j] += w * s
                    if scores is not None:
                        scores[j][name] = s
        return rejects, partial

    def _refresh(self, sc: ShapeCache, req: Request) -> None:
        """Bring a shape's cached verdicts up to date with the clusters changed since it was last used."""
        state = self.state
        now_pos = state.change_position
        if sc.position == now_pos:
            return
        since = sc.position - state.changes_base
        if sc.position < 0 or since < 0 or now_pos - sc.position > len(sc.cands):
            todo = list(range(len(sc.cands)))
        else:
            slot = sc.slot
            todo = sorted({slot[i] for i in state.changes[since:] if i in slot})
        if todo:
            rejects, partial = self._local([sc.cands[j] for j in todo], req)
            for j, r, p in zip(todo, rejects, partial):
                sc.rejects[j] = r
                sc.partial[j] = p
        sc.position = now_pos

    # -- decide -------------------------------------------------------------------------------------
    def decide(self, req: Request, explain: bool = False, allow_preemption: bool = True) -> Decision:
        state = self.state
        sc = self._shape(req)
        cands, static_rejects = sc.cands, sc.static_rejects
        q = quota(req, state)
        if q is not None and not cands:   # no cluster could ever take it: that says more than the quota
            return self._unplaceable(req, cands, static_rejects, [], list(static_rejects) if explain else [], False)
        if q is not None:
            verdicts = static_rejects + [Verdict(cs.name, q) for cs in cands] if explain else []
            return Decision(req, verdicts=verdicts, reason=q.message,
                            permanent=not cands or req.team not in state.quota)
        if explain:
            return self._decide_explained(req, cands, static_rejects, allow_preemption)
        self._refresh(sc, req)
        feasible = [cs for cs, r in zip(cands, sc.rejects) if r is None]
        partial = [p for p, r in zip(sc.partial, sc.rejects) if r is None]
        rejects: list[tuple[ClusterState, Reject]] = []  # fleet-filter rejects; cluster ones are in sc.rejects
        for f in self.fleet_filters:
            if not feasible:
                break
            kept, rejected = f(feasible, req, state)
            if rejected:
                rejects.extend(rejected)
                partial = [partial[i] for i, cs in enumerate(feasible) if cs in kept]
                feasible = kept
        if not feasible:
            rejects = [(cs, r) for cs, r in zip(cands, sc.rejects) if r is not None] + rejects
            return self._unplaceable(req, cands, static_rejects, rejects, [], allow_preemption)
        ctx: dict = {}
        totals = partial
        for _, fn, w in self.fleet_scorers:
            totals = [t + w * s for t, s in zip(totals, fn(feasible, req, state, ctx))]
        best = max(range(len(feasible)), key=totals.__getitem__)
        cost = ctx.get("cost_per_gpu_hour")
        return Decision(req, cluster=feasible[best].name, score=totals[best],
                        cost_per_gpu_hour=cost[best] if cost else None)

    def _decide_explained(self, req: Request, cands, static_rejects, allow_preemption) -> Decision:
        """The same pipeline without caches, recording every candidate's verdict and per-scorer scores."""
        verdicts = list(static_rejects)
        all_scores: list[dict] = [{} for _ in cands]
        cluster_rejects, all_partial = self._local(cands, req, all_scores)
        feasible, partial, local_scores, rejects = [], [], [], []
        for cs, r, p, scores in zip(cands, cluster_rejects, all_partial, all_scores):
            if r is None:
                feasible.append(cs)
                partial.append(p)
                local_scores.append(scores)
            else:
                rejects.append((cs, r))
        for f in self.fleet_filters:
            if not feasible:
                break
            kept, rejected = f(feasible, req, self.state)
            if rejected:
                rejects.extend(rejected)
                keep = [i for i, cs in enumerate(feasible) if cs in kept]
                partial, local_scores, feasible = [partial[i] for i in keep], [local_scores[i] for i in keep], kept
        verdicts.extend(Verdict(cs.name, r) for cs, r in rejects)
        if not feasible:
            return self._unplaceable(req, cands, static_rejects, rejects, verdicts, allow_preemption)
        ctx: dict = {}
        totals = partial
        for name, fn, w in self.fleet_scorers:
            s = fn(feasible, req, self.state, ctx)
            totals = [t + w * x for t, x in zip(totals, s)]
            for i, x in enumerate(s):
                local_scores[i][name] = x
        order = [n for n, _ in self.profile.normalized()]
        for i, cs in enumerate(feasible):
            verdicts.append(Verdict(cs.name, None, {n: round(local_scores[i][n], 4) for n in order}, round(totals[i], 4)))
        best = max(range(len(feasible)), key=totals.__getitem__)
        cost = ctx.get("cost_per_gpu_hour")
        return Decision(req, cluster=feasible[best].name, score=totals[best], verdicts=verdicts,
                        cost_per_gpu_hour=cost[best] if cost else None)

    def _unplaceable(self, req, cands, static_rejects, rejects, verdicts, allow_preemption) -> Decision:
        if allow_preemption:
            short = [cs for cs, r in rejects if r.filter == "capacity"]
            # the fleet filters that do not count free GPUs hold for preemption too: caps, and the room
            # under a cap the plan gives other work
            for f in (concentration, cap_reservation):
                short = f(short, req, self.state)[0] if short else short
            plan = choose_victims(self.state, req, short)
            if plan is not None:
                cs, victims = plan
                return Decision(req, cluster=cs.name, victims=tuple(victims), verdicts=verdicts,
                                reason=f"preempts {len(victims)} lower-priority allocation(s)")
        if not cands:
            # The most telling static reject is the one that got furthest down the filter list.
            order = {f.__name__: i for i, f in enumerate(self.static)}
            closest = max(static_rejects, key=lambda v: order.get(v.rejected.filter, -1), default=None)
            why = closest.rejected.message if closest else "the portfolio has no clusters"
            reason = f"no cluster can ever take it: {why}" if len(static_rejects) <= 1 else \
                f"no cluster can ever take it ({len(static_rejects)} rejected; e.g. {why})"
            return Decision(req, verdicts=verdicts, reason=reason, permanent=True)
        else:
            cs, r = max(rejects, key=lambda x: _closeness(x[0], x[1]))
            reason = f"no cluster can take it now; closest is {cs.name}: {r.message}"
        return Decision(req, verdicts=verdicts, reason=reason)

    # -- commit and release (the one door) ----------------------------------------------------------
    def commit(self, d: Decision) -> Allocation:
        """Apply a decision: evict its victims, allocate domains. Committing the same request twice is a no-op."""
        req = d.request
        existing = self.state.allocations.get(req.id)
        if existing is not None:
            return existing
        if d.cluster is None:
            raise ValueError(f"request {req.id} was not placed: {d.reason}")
        for v in d.victims:
            self.release(v)
        cs = self.state.by_name[d.cluster]
        dom = cs.domains
        if not dom.fits(req.groups, req.group) or not cs.up or cs.provider in self.state.providers_down:
            raise ValueError(f"request {req.id} no longer fits on {cs.name}; decide again")
        parts = dom.take(req.groups, req.group)
        self.state.touch(cs)
        a = Allocation(req, cs.name, cs.provider, parts, started_at=self.state.now)
        self.state.allocations[req.id] = a
        self.state.count(a, cs, +1)
        return a

    def adopt(self, req: Request, cluster: str, parts: tuple[tuple[int, int], ...], started_at: float
              ) -> Allocation | None:
        """Take back an allocation recorded earlier (a restarted server re-reading its database): the same
        domains, no decision. None if the cluster or those GPUs are gone, or the parts do not match."""
        if req.id in self.state.allocations:
            return self.state.allocations[req.id]
        cs = self.state.by_name.get(cluster)
        if cs is None or sum(n for _, n in parts) != req.gpus or any(n % req.group for _, n in parts):
            return None
        if not cs.up or cs.provider in self.state.providers_down or not cs.domains.claim(parts):
            return None
        self.state.touch(cs)
        a = Allocation(req, cs.name, cs.provider, parts, started_at=started_at)
        self.state.allocations[req.id] = a
        self.state.count(a, cs, +1)
        return a

    def release(self, request_id: str) -> Allocation | None:
        a = self.state.allocations.pop(request_id, None)
        if a is None:
            return None
        cs = self.state.by_name[a.cluster]
        cs.domains.give(a.parts)
        self.state.touch(cs)
        self.state.count(a, cs, -1)
        return a

    def place(self, req: Request, explain: bool = False) -> tuple[Decision, Allocation | None]:
        d = self.decide(req, explain)
        return d, (self.commit(d) if d.placed else None)

    # -- the world changes --------------------------------------------------------------------------
    def set_guide(self, guide: Guide | None) -> None:
        """Follow this plan from now on (the `plan` and `shadow` scorers read it); None: no plan."""
        self.state.guide = guide.reorder([cs.name for cs in self.state.clusters]) if guide is not None else None

    def set_time(self, now: float) -> list[str]:
        """Advance the clock (ramps, reservations). Returns allocations whose domains ceased to exist."""
        return self.state.set_time(now)

    def fail_domain(self, cluster: str, domain: int) -> list[str]:
        cs = self.state.by_name[cluster]
        cs.domains.mark_down(domain)
        self.state.touch(cs)
        return self.state.allocations_on(cs, domain)

    def repair_domain(self, cluster: str, domain: int) -> None:
        cs = self.state.by_name[cluster]
        cs.domains.mark_up(domain)
        self.state.touch(cs)

    def fail_cluster(self, cluster: str) -> list[str]:
        cs = self.state.by_name[cluster]
        cs.up = False
        self.state.touch(cs)
        return self.state.allocations_on(cs)

    def repair_cluster(self, cluster: str) -> None:
        cs = self.state.by_name[cluster]
        cs.up = True
        self.state.touch(cs)

    def fail_provider(self, provider: str) -> list[str]:
        self.state.providers_down.add(provider)
        self._touch_provider(provider)
        return sorted(a.request.id for a in self.state.allocations.values() if a.provider == provider)

    def repair_provider(self, provider: str) -> None:
        self.state.providers_down.discard(provider)
        self._touch_provider(provider)

    def _touch_provider(self, provider: str) -> None:
        for cs in self.state.clusters:
            if cs.provider == provider:
                self.state.touch(cs)


def _closeness(cs: ClusterState, r: Reject) -> tuple:
    """Order rejected clusters by how near they came: capacity shortfalls first, then the most free GPUs."""
    return (r.filter == "capacity", cs.domains.free_total)
