"""Money and use over time: GPU-seconds per cluster, billed under the contracts tick by tick.

Each tick, a cluster's GPU-hours go first to reserved capacity that covers it (already paid), then to a spend
commitment in force (drawn at the contract rate; usage beyond the commitment is billed at that rate too),
then to on-demand at list price less any discount. Reserved capacity is paid in full every tick; a
commitment's unspent part is owed at the end of its term (take-or-pay), prorated to the simulated window.
"""

from __future__ import annotations

from ..placement.state import ClusterState, ContractState, FleetState


class Accounting:
    def __init__(self, state: FleetState, t0: float):
        self.state = state
        n = len(state.clusters)
        self.t0 = t0
        self.last = [t0] * n                 # when each cluster's integrals were last brought up to date
        self.used_s = [0.0] * n              # allocated GPU-seconds since the last tick
        self.cap_s = [0.0] * n               # live GPU-seconds since the last tick
        self.total_used_s = [0.0] * n
        self.total_cap_s = [0.0] * n
        self.spend_by_provider: dict[str, float] = {}
        self.spend_by_contract: dict[str, float] = {k.name: 0.0 for k in state.contracts}
        self.reserved_wasted_usd: dict[str, float] = {k.name: 0.0 for k in state.contracts
                                                      if k.kind == "reserved_capacity"}
        self.on_demand_usd = 0.0
        self.list_usd = 0.0                  # clusters with no contract at all

    # -- integrals ------------------------------------------------------------------------------------
    def _live(self, cs: ClusterState) -> int:
        if not cs.up or cs.provider in self.state.providers_down:
            return 0
        return cs.capacity

    def mark(self, cs: ClusterState, now: float) -> None:
        """Bring `cs`'s integrals up to `now`; call before anything about the cluster changes."""
        i = cs.index
        dt = now - self.last[i]
        if dt > 0:
            self.used_s[i] += cs.allocated * dt
            self.cap_s[i] += self._live(cs) * dt
            self.last[i] = now

    # -- billing --------------------------------------------------------------------------------------
    def _add(self, provider: str, usd: float) -> None:
        self.spend_by_provider[provider] = self.spend_by_provider.get(provider, 0.0) + usd

    def tick(self, start: float, now: float) -> tuple[list[float], list[float]]:
        """Bill the interval [start, now). Returns (used GPU-hours, live GPU-hours) per cluster for it."""
        state = self.state
        for cs in state.clusters:
            self.mark(cs, now)
        hours = max(0.0, now - start) / 3600.0
        used = [s / 3600.0 for s in self.used_s]
        cap = [s / 3600.0 for s in self.cap_s]
        for i in range(len(used)):
            self.total_used_s[i] += self.used_s[i]
            self.total_cap_s[i] += self.cap_s[i]
            self.used_s[i] = self.cap_s[i] = 0.0
        left = list(used)
        mid = (start + now) / 2
        by_name = state.by_name
        for k in state.contracts:
            if k.kind != "reserved_capacity" or not k.in_force(mid):
                continue
            paid_h = k.reserved * hours
            pool = sum(left[by_name[c].index] for c in k.clusters)
            covered = min(pool, paid_h)
            if pool > 0:
                for c in k.clusters:
                    left[by_name[c].index] -= left[by_name[c].index] * covered / pool
            usd = paid_h * k.rate
            self.spend_by_contract[k.name] += usd
            self.reserved_wasted_usd[k.name] += (paid_h - covered) * k.rate
            self._add(k.spec.provider, usd)
        for cs in state.clusters:
            h = left[cs.index]
            if h <= 0:
                continue
            bill = _cheapest_open(cs, mid)
            if bill is None:
                usd = h * cs.list_price
                self.list_usd += usd
            elif bill.kind == "spend_commitment":
                usd = h * bill.rate_for(cs.name)
                self.spend_by_contract[bill.name] += usd
                bill.spent_usd += usd              # the engine's burn-down input
            else:
                usd = h * cs.list_price * (1.0 - bill.discount)
                self.spend_by_contract[bill.name] += usd
                self.on_demand_usd += usd
            self._add(cs.provider, usd)
        return used, cap

    # -- the end of the run ---------------------------------------------------------------------------
    def commitments(self, t_start: float, t_end: float) -> list[dict]:
        """Per spend commitment: drawn, owed in the simulated window (prorated take-or-pay), wasted."""
        out = []
        for k in self.state.contracts:
            if k.kind != "spend_commitment":
                continue
            overlap = max(0.0, min(t_end, k.end) - max(t_start, k.start))
            owed = k.commitment_usd * overlap / (k.end - k.start)
            drawn = self.spend_by_contract[k.name]
            out.append({"contract": k.name, "provider": k.spec.provider, "committed_usd": k.commitment_usd,
                        "owed_in_window_usd": owed, "drawn_usd": drawn, "wasted_usd": max(0.0, owed - drawn),
                        "beyond_commitment_usd": max(0.0, k.spent_usd - k.commitment_usd)})
        return out


def _cheapest_open(cs: ClusterState, t: float) -> ContractState | None:
    """The non-reserved contract that bills usage on `cs` at time t: a commitment before on-demand."""
    best = None
    for k in cs.contracts:
        if k.kind == "reserved_capacity" or not k.in_force(t):
            continue
        if best is None or (k.kind == "spend_commitment" and best.kind != "spend_commitment"):
            best = k
    return best
