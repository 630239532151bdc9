"""Backend dispatch and health: what runs where, starting and stopping it, and which backends answer.

The control loop decides; this starts placed work on its cluster's backend and stops work that lost its
placement, outside any transaction, and remembers what it did until the next turn writes it down.
A backend that stops answering for `down_after` polls is down: its clusters are lost until it answers
again, and stops meant for it wait until then (they would only time out and hold up starts elsewhere).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..backends.base import BackendError, BackendSet, BackendUnavailable, Launch, Loss, Status
from ..model.job import JobSpec
from ..placement.engine import Engine

log = logging.getLogger("gpufleet.control")


@dataclass
class Active:
    """A placement the engine holds: its backend and handle once started."""

    placement_id: int
    job_id: int
    request_id: str
    backend: str
    handle: dict[str, Any] | None
    spec: JobSpec | None = None
    team: str = ""
    attempt: int = 0
    launch: Launch | None = None


@dataclass
class PollResult:
    changed: dict[int, Status]                 # placement id -> a status other than running
    losses: list[tuple[str, Loss]]             # (backend, what it lost)
    unreachable: list[tuple[str, str]]         # (backend, why) went down; (backend, "") answers again

    def __bool__(self) -> bool:
        return bool(self.changed or self.losses or self.unreachable)


def checkpoint_dir(data_dir: Path, instance: str, job_id: int) -> Path:
    """Where a job of the database `instance` checkpoints: its own across attempts, never another database's
    job of the same number (runs, per attempt, are `Launch.run_name`)."""
    return Path(data_dir) / "checkpoints" / instance / str(job_id)


class Dispatch:
    def __init__(self, backends: BackendSet, data_dir: Path, clock: Callable[[], float], down_after: int):
        self.backends = backends
        self.data_dir = data_dir
        self.instance = ""   # the database's identity: keys run and checkpoint directories (set at start)
        self.clock = clock
        self.down_after = down_after
        self.active: dict[str, Active] = {}          # request id -> placement
        self.by_job: dict[int, set[str]] = {}        # job id -> its request ids in `active`
        self.by_placement: dict[int, Active] = {}    # placement id -> the same entries as `active`
        self.handles: dict[str, dict[int, dict[str, Any]]] = {}  # backend -> placement id -> handle (started)
        self.to_start: dict[str, None] = {}          # request ids placed but not yet started (in order)
        self.to_cancel: list[tuple[str, dict[str, Any]]] = []  # (backend, handle) to stop after commit
        self.started: list[tuple[Active, float]] = []  # started since the last commit: written next turn
        self.refused: list[tuple[Active, str, bool]] = []  # starts a backend refused: handled next turn
        self.failures: dict[str, int] = {}
        self.down: set[str] = set()
        # handles to stop on a backend that is down: its work was moved, and whatever still runs there when
        # it answers again is stopped then (kept in memory: a restart in between forgets them)
        self.cancel_later: dict[str, list[dict[str, Any]]] = {}

    def clear(self) -> None:
        for x in (self.active, self.by_job, self.by_placement, self.handles, self.to_start):
            x.clear()
        self.started.clear()
        self.refused.clear()

    @property
    def busy(self) -> bool:
        return bool(self.to_start or self.to_cancel or self.started or self.refused)

    # -- what runs where --------------------------------------------------------------------------------
    def add(self, act: Active) -> None:
        self.active[act.request_id] = act
        self.by_placement[act.placement_id] = act
        if act.handle is not None:
            self.handles.setdefault(act.backend, {})[act.placement_id] = act.handle
        self.by_job.setdefault(act.job_id, set()).add(act.request_id)

    def pop(self, request_id: str) -> Active | None:
        act = self.active.pop(request_id, None)
        if act is not None:
            self.by_placement.pop(act.placement_id, None)
            self.handles.get(act.backend, {}).pop(act.placement_id, None)
            rids = self.by_job.get(act.job_id)
            if rids is not None:
                rids.discard(request_id)
                if not rids:
                    del self.by_job[act.job_id]
            self.to_start.pop(request_id, None)
        return act

    def stop_later(self, act: Active) -> None:
        if act.handle is not None:
            self.to_cancel.append((act.backend, act.handle))

    # -- start and stop ---------------------------------------------------------------------------------
    def launch(self, engine: Engine | None) -> None:
        """Start placed work and stop cancelled work, outside any transaction; what happened is written by
        the next turn's transaction."""
        cancels, self.to_cancel = self.to_cancel, []
        for name, handle in cancels:
            if name in self.down:
                self.cancel_later.setdefault(name, []).append(handle)
                continue
            try:
                self.backends.for_cluster(name).cancel(handle)
            except BackendUnavailable as e:
                log.warning("could not stop work on backend %s (will retry when it answers): %s", name, e)
                self.cancel_later.setdefault(name, []).append(handle)
            except BackendError as e:
                log.warning("could not stop work on backend %s: %s", name, e)
        if not self.to_start or engine is None:
            return
        starts, self.to_start = list(self.to_start), {}
        for rid in starts:
            act = self.active.get(rid)
            if act is None or act.handle is not None or act.spec is None:
                continue
            launch = self.launch_for(engine, act)
            try:
                handle = self.backends.for_cluster(act.backend).start(launch)
            except BackendUnavailable as e:
                self.refused.append((act, str(e), True))
                continue
            except BackendError as e:
                self.refused.append((act, str(e), False))
                continue
            act.handle, act.launch = handle, launch
            self.handles.setdefault(act.backend, {})[act.placement_id] = handle
            self.started.append((act, self.clock()))

    def launch_for(self, engine: Engine, act: Active) -> Launch:
        assert act.spec is not None
        spec = act.spec
        alloc = engine.state.allocations[act.request_id]
        cs = engine.state.by_name[alloc.cluster]
        ckpt = checkpoint_dir(self.data_dir, self.instance, act.job_id)
        return Launch(job_id=act.job_id, attempt=act.attempt, request_id=act.request_id, instance=self.instance,
                      name=spec.name,
                      team=act.team, command=spec.command or "", env=dict(spec.env), cluster=alloc.cluster,
                      provider=alloc.provider, gpu_type=cs.spec.gpu.name, parts=alloc.parts,
                      group=alloc.request.group, domain_size=cs.spec.domain_size, checkpoint_dir=str(ckpt))

    # -- health -----------------------------------------------------------------------------------------
    def poll(self) -> PollResult:
        """Ask each backend how its work is doing and what capacity it lost."""
        statuses: dict[int, Status] = {}
        res = PollResult({}, [], [])
        for name in sorted(set(self.handles) | set(self.backends.backends)):
            b = self.backends.backends.get(name)
            if b is None:
                continue
            try:
                if name in self.handles:
                    statuses.update(b.poll(self.handles[name]))
                res.losses += [(name, x) for x in b.losses()]
                self.failures[name] = 0
                if name not in self.down and name in self.cancel_later:
                    self.to_cancel += [(name, h) for h in self.cancel_later.pop(name)]  # it answers: retry
                if name in self.down:
                    res.unreachable.append((name, ""))  # answered again
            except BackendUnavailable as e:
                self.failures[name] = self.failures.get(name, 0) + 1
                if self.failures[name] >= self.down_after and name not in self.down:
                    res.unreachable.append((name, str(e)))
            except BackendError as e:
                log.warning("polling backend %s failed: %s", name, e)
        res.changed = {pid: st for pid, st in statuses.items() if st.state != "running"}
        return res

    def mark_down(self, name: str) -> None:
        self.down.add(name)

    def mark_up(self, name: str) -> None:
        self.down.discard(name)
        self.to_cancel += [(name, h) for h in self.cancel_later.pop(name, [])]

    def backend_of(self, cluster_backend: str | None) -> str:
        return cluster_backend or self.backends.default
