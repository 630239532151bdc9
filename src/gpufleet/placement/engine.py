"""The placement engine: the one scheduling core every other part calls.

    decide(request)  -> Decision   (read-only: filters, scorers, select; explains on request)
    commit(decision) -> Allocation (the one door that changes state; idempotent)
    release(id)                    (exact inverse of commit; idempotent)
"""

from __future__ import annotations

from .filters import DYNAMIC_FILTERS, STATIC_FILTERS, quota
from .preempt import choose_victims
from .profiles import Profile, get_profile
from .request import Allocation, Decision, Reject, Request, Verdict
from .scorers import SCORERS
from .state import ClusterState, FleetState
from ..model.scenario import Portfolio


class Engine:
    def __init__(self, portfolio: Portfolio, now: float, profile: str | Profile | None = None):
        # The pipeline, top to bottom:
        self.state = FleetState(portfolio, now)                      # live state, counters kept by commit/release
        self.static = list(STATIC_FILTERS.items())                   # 1. candidates: type, place, topology (cached)
        self.dynamic = list(DYNAMIC_FILTERS.items())                 # 2. feasibility now: health, capacity, caps
        prof = profile if isinstance(profile, Profile) else get_profile(profile or portfolio.policies.default_profile)
        self.profile = prof
        self.scorers = [(name, SCORERS[name], w) for name, w in prof.normalized()]  # 3. weighted scorers
        self._shapes: dict[tuple, tuple[list[ClusterState], list[Verdict]]] = {}    # static verdicts per shape

    # -- candidates ---------------------------------------------------------------------------------
    def _candidates(self, req: Request) -> tuple[list[ClusterState], list[Verdict]]:
        key = req.shape
        hit = self._shapes.get(key)
        if hit is not None:
            return hit
        ok, rejected = [], []
        for cs in self.state.clusters:
            for _, f in self.static:
                r = f(cs, req, self.state)
                if r is not None:
                    rejected.append(Verdict(cs.name, r))
                    break
            else:
                ok.append(cs)
        if len(self._shapes) > 100_000:
            self._shapes.clear()
        self._shapes[key] = (ok, rejected)
        return ok, rejected

    # -- decide -------------------------------------------------------------------------------------
    def decide(self, req: Request, explain: bool = False, allow_preemption: bool = True) -> Decision:
        state = self.state
        cands, static_rejects = self._candidates(req)
        verdicts: list[Verdict] = list(static_rejects) if explain else []
        q = quota(req, state)
        if q is not None:
            if explain:
                verdicts.extend(Verdict(cs.name, q) for cs in cands)
            return Decision(req, verdicts=verdicts, reason=q.message)
        feasible: list[ClusterState] = []
        rejects: list[tuple[ClusterState, Reject]] = []
        for cs in cands:
            for _, f in self.dynamic:
                r = f(cs, req, state)
                if r is not None:
                    rejects.append((cs, r))
                    break
            else:
                feasible.append(cs)
        if explain:
            verdicts.extend(Verdict(cs.name, r) for cs, r in rejects)
        if not feasible:
            return self._unplaceable(req, cands, static_rejects, rejects, verdicts, allow_preemption)
        best, best_score, best_i, ctx = self._select(feasible, req, verdicts if explain else None)
        cost = ctx.get("cost_per_gpu_hour")
        return Decision(req, cluster=best.name, score=best_score,
                        cost_per_gpu_hour=cost[best_i] if cost else None, verdicts=verdicts)

    def _select(self, feasible: list[ClusterState], req: Request, verdicts: list[Verdict] | None):
        ctx: dict = {}
        n = len(feasible)
        totals = [0.0] * n
        per: list[tuple[str, list[float]]] = []
        for name, fn, w in self.scorers:
            s = fn(feasible, req, self.state, ctx)
            per.append((name, s))
            for i in range(n):
                totals[i] += w * s[i]
        best_i = max(range(n), key=totals.__getitem__)  # first maximum: ties go to the earlier cluster
        if verdicts is not None:
            for i, cs in enumerate(feasible):
                verdicts.append(Verdict(cs.name, None, {k: round(v[i], 4) for k, v in per}, round(totals[i], 4)))
        return feasible[best_i], totals[best_i], best_i, ctx

    def _unplaceable(self, req, cands, static_rejects, rejects, verdicts, allow_preemption) -> Decision:
        if allow_preemption:
            plan = choose_victims(self.state, req, [cs for cs, r in rejects if r.filter == "capacity"])
            if plan is not None:
                cs, victims = plan
                return Decision(req, cluster=cs.name, victims=tuple(victims), verdicts=verdicts,
                                reason=f"preempts {len(victims)} lower-priority allocation(s)")
        if not cands:
            why = static_rejects[0].rejected.message if static_rejects else "the portfolio has no clusters"
            reason = f"no cluster can ever take it: {why}" if len(static_rejects) <= 1 else \
                f"no cluster can ever take it ({len(static_rejects)} rejected; e.g. {why})"
        else:
            cs, r = max(rejects, key=lambda x: _closeness(x[0], x[1], req))
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
        a = Allocation(req, cs.name, cs.provider, parts, started_at=self.state.now)
        self.state.allocations[req.id] = a
        self.state.count(a, +1)
        return a

    def release(self, request_id: str) -> Allocation | None:
        a = self.state.allocations.pop(request_id, None)
        if a is None:
            return None
        self.state.by_name[a.cluster].domains.give(a.parts)
        self.state.count(a, -1)
        return a

    def place(self, req: Request, explain: bool = False) -> tuple[Decision, Allocation | None]:
        d = self.decide(req, explain)
        return d, (self.commit(d) if d.placed else None)

    # -- the world changes --------------------------------------------------------------------------
    def set_time(self, now: float) -> list[str]:
        """Advance the clock (ramps, reservations). Returns allocations whose domains ceased to exist."""
        return self.state.set_time(now)

    def fail_domain(self, cluster: str, domain: int) -> list[str]:
        cs = self.state.by_name[cluster]
        cs.domains.mark_down(domain)
        return self.state.allocations_on(cs, domain)

    def repair_domain(self, cluster: str, domain: int) -> None:
        self.state.by_name[cluster].domains.mark_up(domain)

    def fail_cluster(self, cluster: str) -> list[str]:
        cs = self.state.by_name[cluster]
        cs.up = False
        self.state.clusters_down.add(cluster)
        return self.state.allocations_on(cs)

    def repair_cluster(self, cluster: str) -> None:
        self.state.by_name[cluster].up = True
        self.state.clusters_down.discard(cluster)

    def fail_provider(self, provider: str) -> list[str]:
        self.state.providers_down.add(provider)
        return sorted(a.request.id for a in self.state.allocations.values() if a.provider == provider)

    def repair_provider(self, provider: str) -> None:
        self.state.providers_down.discard(provider)


def _closeness(cs: ClusterState, r: Reject, req: Request) -> tuple:
    """Order rejected clusters by how near they came: capacity shortfalls first, then the most free GPUs."""
    return (r.filter == "capacity", cs.domains.free_total)
