"""`gpufleet submit --dry-run`: the decision the control loop would make on a job now, and nothing stored.

Answered on the control thread (it reads the live engine) by the scheduler's own `trial`, so the answer is the
one the cycle would give: the same translation, queue rule, quotas, spread and preemption rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model.job import JobSpec
from ..placement.request import Allocation, Decision
from ..scheduling.translate import job_work
from .commands import Command, Refused

if TYPE_CHECKING:
    from .control import Control

PREFIX = "dry-run"   # request ids of the trial work: never a job's (those start with its number)


@dataclass
class DryRun(Command):
    team: str
    spec: JobSpec
    admin: bool = False   # an admin sees whose work a preemption would take; a team only its own


def answer(c: Control, cmd: DryRun, now: float) -> dict[str, Any]:
    from .control import job_of, total_gpus
    sched, eng = c.sched, c.engine
    if sched is None or eng is None:
        raise Refused("no portfolio is loaded yet: load a scenario first (PUT /v1/portfolio)", 409)
    spec = cmd.spec
    doc: dict[str, Any] = {"job": spec.name, "kind": spec.kind, "team": cmd.team, "gpus": total_gpus(spec),
                           "priority": spec.effective_priority, "at": now}
    try:
        w = job_work(spec, c.catalog, now, prefix=PREFIX, tag=spec, label=f"job {spec.name!r}")
    except (ValueError, KeyError) as e:
        raise Refused(f"job: {e}", 422) from e
    never = sched.never_runs(w)
    if never is not None:
        return {**doc, "would_place": False, "permanent": True, "reason": f"can never run on this portfolio: {never}",
                "waiting_ahead": 0, "placements": [], "preempts": [], "preempts_other_teams": 0,
                "explanation": _explain(eng.decide(w.requests[0], True, False))}
    res, ahead = sched.trial(w)
    ok = not res.unplaced
    first: Decision = res.unplaced[0] if res.unplaced else res.placed[0][0]
    victims = sorted({job_of(v) for d, _ in res.placed for v in d.victims})
    teams = {v: (c.works[v].team if v in c.works else None) for v in victims}
    own = [v for v in victims if cmd.admin or teams[v] == cmd.team]
    return {**doc, "would_place": ok, "permanent": False, "reason": None if ok else (first.reason or "waiting for capacity"),
            "waiting_ahead": len(ahead), "placements": [_placement(c, d, a) for d, a in res.placed] if ok else [],
            "preempts": own, "preempts_other_teams": len(victims) - len(own), "explanation": _explain(first)}


def _placement(c: Control, d: Decision, a: Allocation) -> dict[str, Any]:
    spec = c.portfolio.clusters[a.cluster] if c.portfolio is not None else None
    return {"request": d.request.id.removeprefix(PREFIX + "/"), "cluster": a.cluster, "provider": a.provider,
            "region": spec.region if spec else None, "gpu": spec.gpu.name if spec else None,
            "gpus": d.request.gpus, "domains": [{"domain": dom, "gpus": n} for dom, n in a.parts],
            "cost_per_gpu_hour": d.cost_per_gpu_hour, "list_price_per_gpu_hour": spec.price_per_gpu_hour if spec else None}


def _explain(d: Decision) -> list[dict[str, Any]]:
    return [v.to_json() for v in d.verdicts]
