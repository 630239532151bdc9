"""Plans on the live server: made on demand (`POST /v1/plans`) and on a schedule (`serve --replan-every`),
stored with their inputs, and followed by the `plan` profile.

A plan is solved outside the control loop (a request thread or the schedule's task): the LP from today to
the end of the portfolio in force, with the same planner `gpufleet plan` runs. The loop then installs it
(`InstallPlan`): one row in `plans`, the guide handed to the engine, an event. At start, and after a restart,
the newest plan of the portfolio in force is installed again; a new portfolio drops the guide until the next
plan (the old one names clusters that may be gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..model.scenario import Portfolio
from ..placement.guide import Gang, Guide
from ..placement.state import to_date
from ..planning.guidance import gangs_of, guide_of
from ..planning.planner import solve_problem
from ..planning.problem import DEFAULT_UNMET_PENALTY, build_problem
from ..planning.result import plan_doc
from ..store import tables as T
from .commands import Command, Refused

if TYPE_CHECKING:
    from .control import Control


# -- the guide as JSON ----------------------------------------------------------------------------------
def guide_doc(g: Guide) -> dict[str, Any]:
    return {"bounds_s": list(g.bounds_s), "clusters": list(g.clusters),
            "workloads": {w: [list(r) for r in grid] for w, grid in g.workloads.items()},
            "kinds": {k: [list(r) for r in grid] for k, grid in g.kinds.items()},
            "value": [list(r) for r in g.value], "made_at_s": g.made_at_s, "label": g.label,
            "gangs": {w: list(v) for w, v in g.gangs.items()},
            "held": {w: [list(r) for r in grid] for w, grid in g.held.items()}, "classes": dict(g.classes)}


def guide_from(doc: dict[str, Any]) -> Guide:
    def grid(rows: list[list[float]]) -> tuple[tuple[float, ...], ...]:
        return tuple(tuple(float(x) for x in r) for r in rows)
    return Guide(bounds_s=tuple(float(x) for x in doc["bounds_s"]), clusters=tuple(doc["clusters"]),
                 workloads={w: grid(g) for w, g in doc["workloads"].items()},
                 kinds={k: grid(g) for k, g in doc["kinds"].items()}, value=grid(doc["value"]),
                 made_at_s=float(doc.get("made_at_s", 0.0)), label=str(doc.get("label", "")),
                 gangs={w: Gang(int(v[0]), int(v[1]), int(v[2]), float(v[3])) for w, v in doc.get("gangs", {}).items()},
                 held={w: grid(g) for w, g in doc.get("held", {}).items()},
                 classes={w: str(k) for w, k in doc.get("classes", {}).items()})


# -- making one ------------------------------------------------------------------------------------------
@dataclass
class InstallPlan(Command):
    portfolio_id: int
    guide: Guide
    record: dict[str, Any]


def make_plan(portfolio: Portfolio, portfolio_id: int, now_s: float, actor: str, clock: Callable[[], float],
              why: str, unmet_penalty: float = DEFAULT_UNMET_PENALTY) -> InstallPlan:
    """Solve the plan from today to the portfolio's end (pure apart from the clock it is given)."""
    start, end = to_date(now_s), portfolio.end
    if end <= start:
        raise Refused(f"the portfolio ends on {end}: nothing is left to plan", 409)
    t0 = clock()
    problem = build_problem(portfolio, start, end, unmet_penalty=unmet_penalty)
    plan = solve_problem(problem)
    wall = clock() - t0
    record = {"horizon_from": start.isoformat(), "horizon_to": end.isoformat(), "status": plan.status,
              "objective_usd": round(plan.objective_usd, 2), "gap": plan.gap, "wall_s": round(wall, 3),
              "inputs": {"unmet_penalty_usd_per_gpu_hour": unmet_penalty, "why": why,
                         "variables": plan.variables, "constraints": plan.constraints},
              "doc": plan_doc(plan, problem)}   # the `gpufleet plan --json` document: the dashboard's plots
    label = f"plan {start.isoformat()}..{end.isoformat()}"
    return InstallPlan(actor=actor, portfolio_id=portfolio_id, guide=guide_of(plan, now_s, label, gangs_of(portfolio)), record=record)


def latest_portfolio_id(s: Session) -> int | None:
    return s.scalar(select(func.max(T.PortfolioVersion.id)))


# -- in the control loop ---------------------------------------------------------------------------------
def install(c: Control, s: Session, cmd: InstallPlan, now: float) -> dict[str, Any]:
    if c.engine is None or latest_portfolio_id(s) != cmd.portfolio_id:
        raise Refused("the portfolio changed while the plan was made; plan again", 409)
    r = cmd.record
    row = T.StoredPlan(made_at=now, made_by=cmd.actor, portfolio_id=cmd.portfolio_id,
                       horizon_from=r["horizon_from"], horizon_to=r["horizon_to"], status=r["status"],
                       objective_usd=r["objective_usd"], gap=r["gap"], wall_s=r["wall_s"], inputs=r["inputs"],
                       guide=guide_doc(cmd.guide), doc=r.get("doc"))
    s.add(row)
    s.flush()
    c.engine.set_guide(cmd.guide)
    if c.sched is not None:
        c.sched.wake_all()   # every score may have changed: try waiting work again
    c._event(s, cmd.actor, "plan", None,
             f"plan {row.id} installed: {r['horizon_from']}..{r['horizon_to']}, {r['status']}, "
             f"${r['objective_usd']:,.0f} ({r['inputs']['why']})")
    return plan_json(row)


def reinstall(c: Control, s: Session) -> None:
    """After a start or a rebuild from the database: follow the newest plan of the portfolio in force."""
    pid = latest_portfolio_id(s)
    if c.engine is None or pid is None:
        return
    row = s.scalars(select(T.StoredPlan).where(T.StoredPlan.portfolio_id == pid)
                    .order_by(T.StoredPlan.id.desc()).limit(1)).first()
    c.engine.set_guide(guide_from(row.guide) if row is not None else None)


def plan_json(row: T.StoredPlan, with_guide: bool = False) -> dict[str, Any]:
    out = {"id": row.id, "made_at": row.made_at, "made_by": row.made_by, "portfolio_version": row.portfolio_id,
           "from": row.horizon_from, "to": row.horizon_to, "status": row.status,
           "objective_usd": row.objective_usd, "gap": row.gap, "wall_s": row.wall_s, "inputs": row.inputs}
    if with_guide:
        out["guide"] = row.guide
    return out
