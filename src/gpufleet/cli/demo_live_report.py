"""What `gpufleet demo --live` tells: the story of the failover from the server's records, the checks it
must pass, and the printed report."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .common import escape, out
from .demo_live_plan import (
    EXTRA_JOB,
    FINAL,
    STEPS,
    STOP_AT_STEP,
    TIMEOUT_END_S,
    TIMEOUT_PROGRESS_S,
    TIMEOUT_START_S,
    TRAIN_JOB,
    DemoFailed,
)

if TYPE_CHECKING:
    from .demo_live import Demo


def _attempts(job: dict) -> list[dict]:
    return [{"attempt": p["attempt"], "cluster": p["cluster"], "provider": p["provider"], "backend": p["backend"],
             "outcome": p["outcome"]} for p in job.get("placements", [])]


def _story(d: Demo, jid: int, extra: int) -> dict[str, Any]:
    """Drive the demo once the clusters and the server are up; the result document (without cleanup)."""
    say = d.say
    res: dict[str, Any] = {"job": {"id": jid, "name": TRAIN_JOB["name"], "gpus": 16, "tp": 8, "steps": STEPS},
                           "extra_job": {"id": extra, "name": EXTRA_JOB["name"]}}
    nodes: dict[int, str] = {}
    seen_running: set[int] = set()
    find_nodes: dict[int, tuple[str, dict]] = {}  # attempt -> (provider, placement) to ask where it runs
    stopped: set[str] = set()
    extra_started = False
    last_step: int | None = None
    state: dict[str, int | None] = {"resumed": None}
    extra_reported = False

    def watch() -> dict:
        nonlocal last_step, extra_reported, extra_started
        for e in d.new_events():
            if e["kind"] == "capacity_lost":
                msg = " ".join(e["message"].split())
                say(f"[bold red]capacity lost[/]: {escape(msg if len(msg) < 200 else msg[:197] + '...')}")
            elif e["kind"] == "requeued" and e["job_id"] == jid:
                say(f"[yellow]requeued[/] job {jid}: {escape(e['message'])}")
                if "last_step_on_a" in res["job"] and "requeued" not in state:
                    state["requeued"] = 1
                    say(f"the last checkpoint provider A wrote: step {res['job']['last_step_on_a']}")
        job = d.job(jid)
        att = job["attempt"]
        if job["state"] == "running" and att not in seen_running:
            seen_running.add(att)
            pl = job["placements"][-1]
            domains = sorted({int(part[0]) for part in pl["parts"]})
            say(f"job {jid} [green]running[/] (attempt {att}) on [bold]{pl['provider']}[/]'s cluster "
                f"{pl['cluster']} via {pl['backend']}, NVLink domains {', '.join(map(str, domains))}")
            if d.locates(pl["provider"]):
                find_nodes[att] = (pl["provider"], pl)
        for a, (prov, pl) in list(find_nodes.items()):
            if prov in stopped or job["state"] != "running":
                del find_nodes[a]
                continue
            where = d.where(prov, jid, a, pl)
            if where:
                nodes[a] = where[0]
                del find_nodes[a]
                say(where[1])
        step = d.step(jid)
        if step is not None and step != last_step and job["state"] == "running":
            if state["resumed"] is None and att > 1:
                m = re.search(r"resume at (\d+) on (\S+)", d.logs(jid))
                if m:
                    state["resumed"] = int(m.group(1))
                    say(f"job {jid} [green]resumed from checkpoint step {m.group(1)}[/] on {m.group(2)}")
            say(f"job {jid} checkpoint step {step}/{STEPS}")
            last_step = step
        if not extra_reported:
            ej = d.job(extra)
            if ej["state"] == "running" and not extra_started:
                extra_started = True
                say(f"extra job {extra} ({EXTRA_JOB['name']}) running on {ej['placements'][-1]['cluster']}")
            if ej["state"] in FINAL:
                extra_reported = True
                pl = ej["placements"][-1] if ej["placements"] else {}
                say(f"extra job {extra} ({EXTRA_JOB['name']}, 1 GPU on prov-b) {ej['state']} on "
                    f"{pl.get('cluster', '?')}, attempt {ej['attempt']}")
        return job

    def until(pred: Callable[[dict], bool], timeout: float, what: str) -> dict:
        end = time.monotonic() + timeout
        while True:
            job = watch()
            if pred(job):
                return job
            if job["state"] in FINAL:
                raise DemoFailed(f"job {jid} ended {job['state']} while waiting for {what}")
            if time.monotonic() > end:
                raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what} (job {jid} {job['state']})")
            if d.server is not None and d.server.poll() is not None:
                raise DemoFailed(f"gpufleet serve exited ({d.server.returncode}):\n{d._server_tail()}")
            time.sleep(0.3)

    job = until(lambda j: j["state"] == "running", TIMEOUT_START_S, "the gang to run")
    first = job["placements"][-1]
    if first["provider"] != "prov-a":
        raise DemoFailed(f"the gang started on {first['provider']}, not on the cheaper prov-a")
    until(lambda j: (d.step(jid) or 0) >= STOP_AT_STEP, TIMEOUT_PROGRESS_S, f"checkpoint step {STOP_AT_STEP}")
    t_stop = time.monotonic()
    res["stopped_at"] = time.time()  # wall clock, comparable with the server's event times
    stopped.add("prov-a")
    d.stop_provider_a()
    last_step = d.step(jid)
    res["job"]["last_step_on_a"] = last_step  # A's processes are gone: nothing writes it until B runs
    say(f"provider A's {d.label} is gone; waiting for gpufleet to notice")
    job = until(lambda j: j["attempt"] >= 2 and j["state"] == "running", TIMEOUT_END_S,
                "the gang to run again")
    res["failover_s"] = round(time.monotonic() - t_stop, 1)
    job = until(lambda j: j["state"] in FINAL, TIMEOUT_END_S, "the gang to finish")
    say(f"job {jid} [bold green]{job['state']}[/]" if job["state"] == "succeeded" else
        f"job {jid} [bold red]{job['state']}[/]")
    log = d.logs(jid)
    m = re.search(r"resume at (\d+) on (\S+)", log)
    if m and state["resumed"] is None:
        state["resumed"] = int(m.group(1))
        say(f"job {jid} resumed from checkpoint step {m.group(1)} on {m.group(2)}")
    done = re.search(r"done at (\d+)", log)
    for _ in range(40):  # the extra job may still be finishing
        if extra_reported:
            break
        watch()
        time.sleep(0.3)
    ej = d.job(extra)
    atts = _attempts(job)
    for a in atts:
        a["nodes"] = nodes.get(a["attempt"])
    res["job"].update({"state": job["state"], "attempts": atts, "lost_gpu_hours": job["lost_gpu_hours"],
                       "resumed_from_step": state["resumed"], "final_step": int(done.group(1)) if done else None})
    res["extra_job"].update({"state": ej["state"], "attempt": ej["attempt"], "attempts": _attempts(ej)})
    queue = d.api("GET", "/v1/jobs").json()
    by_state: dict[str, int] = {}
    for j in queue:
        by_state[j["state"]] = by_state.get(j["state"], 0) + 1
    others = [j for j in queue if j["id"] != jid]
    res["server_alive"] = d.server_alive()
    say("gpufleet serve is still up and answering" if res["server_alive"] else
        "[bold red]gpufleet serve is gone[/]")
    res["queue"] = {"jobs": len(queue), "by_state": by_state,
                    "other_jobs_lost": sum(1 for j in others if j["state"] != "succeeded" or j["attempt"] != 1
                                           or j["lost_gpu_hours"] > 0)}
    res["capacity_lost"] = [{"target": e["detail"].get("target"), "message": e["message"]}
                            for e in d.events if e["kind"] == "capacity_lost"]
    res["events"] = [{"at": e["at"], "kind": e["kind"], "job_id": e["job_id"], "message": e["message"]}
                     for e in d.events]
    return res


def _problems(res: dict) -> list[str]:
    """Why the result does not show a working failover (empty when it does)."""
    p = []
    job, ex = res.get("job", {}), res.get("extra_job", {})
    if res.get("error"):
        p.append(res["error"])
    if not job.get("attempts"):
        return p or ["the gang never ran"]
    if job.get("state") != "succeeded":
        p.append(f"the gang ended {job.get('state')}")
    if [a["provider"] for a in job["attempts"]] != ["prov-a", "prov-b"]:
        p.append(f"the gang ran on {[a['provider'] for a in job['attempts']]}, not prov-a then prov-b")
    elif job["attempts"][0]["outcome"] != "lost":
        p.append(f"the attempt on prov-a ended {job['attempts'][0]['outcome']}, not lost")
    if not job.get("lost_gpu_hours", 0) > 0:
        p.append("no lost GPU-hours were reported")
    if not (job.get("resumed_from_step") or 0) >= 1:
        p.append("the gang did not resume from a checkpoint")
    elif job.get("last_step_on_a") is not None and job["resumed_from_step"] < job["last_step_on_a"]:
        p.append(f"the gang resumed from step {job['resumed_from_step']}, behind A's last checkpoint "
                 f"{job['last_step_on_a']}")
    if job.get("final_step") != STEPS:
        p.append(f"the gang did not reach step {STEPS}")
    if [c["target"] for c in res.get("capacity_lost", [])] != ["a-h100"]:
        p.append(f"capacity lost on {[c['target'] for c in res.get('capacity_lost', [])]}, expected a-h100 only")
    if ex.get("state") != "succeeded" or [a["provider"] for a in ex.get("attempts", [])] != ["prov-b"]:
        p.append(f"the extra job ended {ex.get('state')} after {ex.get('attempts')}")
    if res.get("queue", {}).get("other_jobs_lost"):
        p.append(f"{res['queue']['other_jobs_lost']} other job(s) were affected")
    if res.get("server_alive") is False:
        p.append("gpufleet serve did not survive the failover")
    left = {k: v for k, v in res.get("leftover_processes", {}).items() if v}
    if left:
        p.append(f"{_label(res)} processes left running: {left}")
    p += [f"cleanup: {e}" for e in res.get("cleanup_errors", [])]
    return p


def _label(res: dict) -> str:
    return {"slurm": "Slurm", "ray": "Ray"}.get(res.get("engine", "slurm"), "Slurm")


def _report(res: dict) -> None:
    job, ex = res["job"], res["extra_job"]
    label = _label(res)
    out.print()
    out.print("[bold]Failover report[/]")
    for a in job.get("attempts", []):
        where = res.get("node_labels", {}).get(a["provider"], "Slurm nodes")
        if where.endswith("nodes"):
            where = f"{where} {a.get('nodes') or '?'}"
        out.print(f"  attempt {a['attempt']}: {a['provider']} / {a['cluster']} (backend {a['backend']}), "
                  f"{where}: {a['outcome'] or 'running'}")
    if "lost_gpu_hours" in job:
        out.print(f"  lost work: {job['lost_gpu_hours']:.4f} GPU-hours = {job['lost_gpu_hours'] * 3600:,.0f} "
                  "GPU-seconds (16 GPUs since the last checkpoint on prov-a)")
        out.print(f"  last checkpoint on prov-a: step {job.get('last_step_on_a')}; resumed on prov-b from step "
                  f"{job.get('resumed_from_step')}; finished at step {job.get('final_step')} of {STEPS}")
    if "failover_s" in res:
        out.print(f"  from stopping prov-a's {label} to running on prov-b: {res['failover_s']:.1f}s")
    if "server_alive" in res:
        out.print(f"  gpufleet serve after the failover: {'up' if res['server_alive'] else '[red]gone[/]'}")
    if "state" in ex:
        where = ", ".join(a["provider"] for a in ex.get("attempts", []))
        out.print(f"  extra job {ex['id']} ({ex['name']}): {ex['state']} on {where or '-'} "
                  f"in {ex['attempt']} attempt(s)")
    if "queue" in res:
        q = res["queue"]
        out.print(f"  queue: {q['jobs']} jobs, {', '.join(f'{n} {s}' for s, n in q['by_state'].items())}; "
                  f"other jobs lost or requeued: {q['other_jobs_lost']}")
    left = res.get("leftover_processes", {})
    out.print("  cleanup: server stopped, " + ("Slurm clusters stopped" if label == "Slurm" else
                                                "Ray cluster stopped")
              + ("" if not any(left.values()) else f" [red](processes left: {left})[/]")
              + ("" if not res.get("cleanup_errors") else f" [red]({len(res['cleanup_errors'])} error(s))[/]")
              + (f"; work dir kept at {res['workdir']}" if res.get("kept") else "; work dir removed"))
    out.print(f"  wall time: {res['wall_s']:.1f}s")
    if res["ok"]:
        out.print("[bold green]failover worked[/]: the gang finished on provider B from its last checkpoint, "
                  "and nothing else was lost")
    else:
        out.print("[bold red]failover did not work[/]:")
        for p in res["problems"]:
            out.print(f"  - {escape(p)}")
