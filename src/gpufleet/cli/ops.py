"""The verbs a fleet team uses every day against a server: `submit` (and `--dry-run`), `jobs` (and
`--follow`), `queue` (as `squeue`) and `status` (the fleet on one screen).

Exit codes as the other client verbs (0 ok, 1 failure, 2 bad input, 4 refused); `submit --dry-run` exits 3
when the job would not be placed now.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, Optional

import typer
from rich.live import Live
from rich.table import Table

from ..files import FileError, load_job
from .client import Client
from .common import EXIT_UNPLACEABLE, emit_json, escape, gpus, out, report_file_error, short
from .live import JsonOpt, ServerOpt, _bad, _when
from .place import _explain_table

FOLLOW_EVERY_S = 2.0
STATUS_CLUSTERS = 12   # clusters `status` lists on its screen (the largest); --json has them all


# == submit ================================================================================================
def submit(
    file: Annotated[str, typer.Argument(help="job file (YAML)")],
    key: Annotated[Optional[str], typer.Option("--key", help="idempotency key: retrying with the same key "
                                               "never creates a second job")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show the decision the server would make now, and "
                                          "create nothing: exit 0 if it would place the job, 3 if not")] = False,
    server: ServerOpt = None, as_json: JsonOpt = False,
) -> None:
    """Submit a job file to the server (or, with --dry-run, only ask what the server would do with it)."""
    try:
        job = load_job(file)
    except FileError as e:
        report_file_error(e)
    if not (job.command or "").strip():
        raise _bad(f"{file}: command: the live control plane runs a command; add `command:` to the job")
    body: dict[str, Any] = {"job": job.model_dump(mode="json", exclude_unset=True)}
    if dry_run:
        _dry_run(Client(server).call("POST", "/v1/dry-run", json_body=body, idempotent=True), as_json)
        return
    # A key makes a retry safe: without one the client makes one, so its own retries never duplicate a job.
    body["key"] = key if key is not None else f"cli-{uuid.uuid4().hex}"
    res = Client(server).call("POST", "/v1/jobs", json_body=body, idempotent=True)
    if as_json:
        emit_json({**res, "key": body["key"]})
        return
    verb = "submitted" if res.get("created") else "already submitted (same key)"
    out.print(f"job {res['id']} {verb}: {job.name} (key {escape(body['key'])})")


def _dry_run(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(doc)
    else:
        _print_dry_run(doc)
    if not doc["would_place"]:
        raise typer.Exit(EXIT_UNPLACEABLE)


def _print_dry_run(doc: dict[str, Any]) -> None:
    name = escape(doc["job"])
    if not doc["would_place"]:
        out.print(f"[yellow]would not place[/] {name} ({gpus(doc['gpus'])}) now: {escape(doc['reason'] or '')}")
        if doc["explanation"]:
            out.print(_explain_table(doc["explanation"]))
        return
    placed = doc["placements"]
    if len(placed) == 1:
        p = placed[0]
        out.print(f"[green]would place[/] {name}: {gpus(p['gpus'])} on [bold]{p['cluster']}[/] ({p['provider']} "
                  f"{p['region']}, {p['gpu']}), effective ${p['cost_per_gpu_hour']:.2f}/GPU-h "
                  f"(list ${p['list_price_per_gpu_hour']:.2f})")
    else:
        t = Table("replica", "cluster", "provider", "region", "GPUs", "$/GPU-h", box=None, header_style="bold",
                  title=f"would place {name}: {len(placed)} replicas on "
                        f"{', '.join(sorted({p['provider'] for p in placed}))}")
        for p in placed:
            t.add_row(p["request"], p["cluster"], p["provider"], p["region"] or "-", f"{p['gpus']:,}",
                      f"{p['cost_per_gpu_hour']:.2f}")
        out.print(t)
    taken = doc["preempts"]
    if taken or doc["preempts_other_teams"]:
        others = doc["preempts_other_teams"]
        named = ", ".join(f"job {j}" for j in taken)
        out.print("preempts: " + ", ".join(x for x in (named, f"{others} job(s) of other teams" if others else "") if x))
    if doc["waiting_ahead"]:
        out.print(f"{doc['waiting_ahead']} waiting job(s) of the same GPUs are tried first; none of them "
                  "is of this job's kind, so it is not held behind them")


# == jobs ==================================================================================================
class JobState(str, Enum):
    queued = "queued"
    placed = "placed"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


def _jobs_table(res: list[dict[str, Any]]) -> Table:
    t = Table("id", "team", "name", "kind", "GPUs", "prio", "state", "cluster", "attempt", "submitted", "reason",
              box=None, header_style="bold")
    for j in res:
        t.add_row(str(j["id"]), j["team"], j["name"], j["kind"], f"{j['gpus']:,}", str(j["priority"]), j["state"],
                  ", ".join(j.get("clusters", [])) or "-", str(j["attempt"]), _when(j["submitted_at"]),
                  escape(j["reason"] or ""))
    return t


def jobs(
    state: Annotated[Optional[JobState], typer.Option(help="only jobs in this state")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every job, finished ones too (default: queued, "
                                       "placed and running only)")] = False,
    team: Annotated[Optional[str], typer.Option(help="only this team's jobs (admin tokens)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 1000,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep the list on screen, redrawn every "
                                         f"{FOLLOW_EVERY_S:g} s, until Ctrl-C (--json: one line per job each "
                                         "time its state or reason changes)")] = False,
    server: ServerOpt = None, as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first: active work unless --all or --state (a team token sees its own team's)."""
    params: dict[str, Any] = {"limit": limit, "newest": True}
    if state:
        params["state"] = state.value
    elif not all_:
        params["active"] = True
    if team:
        params["team"] = team
    client = Client(server)
    res = client.call("GET", "/v1/jobs", params=params)
    if follow:
        _follow_jobs(client, params, res, as_json)
    elif as_json:
        emit_json(res)
    else:
        out.print(_jobs_table(res))


def _follow_jobs(client: Client, params: dict[str, Any], res: list[dict[str, Any]], as_json: bool) -> None:
    """Like `watch gpufleet jobs`; with --json, like `tail -f`: a JSON line for each change of a job."""
    seen: dict[int, tuple] = {}
    try:
        if not as_json:
            with Live(_jobs_table(res), console=out, auto_refresh=False) as screen:
                while True:
                    time.sleep(FOLLOW_EVERY_S)
                    screen.update(_jobs_table(client.call("GET", "/v1/jobs", params=params)), refresh=True)
        while True:
            for j in reversed(res):
                now = (j["state"], j["reason"], tuple(j.get("clusters", [])), j["attempt"])
                if seen.get(j["id"]) != now:
                    seen[j["id"]] = now
                    print(json.dumps(j), flush=True)
            time.sleep(FOLLOW_EVERY_S)
            res = client.call("GET", "/v1/jobs", params=params)
    except KeyboardInterrupt:
        return


# == queue =================================================================================================
def queue_order(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Waiting work in the order the live queue tries it (priority, then submission), numbered; running
    and placed work after it, longest running first."""
    waiting = sorted((j for j in jobs if j["state"] == "queued"), key=lambda j: (-j["priority"], j["submitted_at"], j["id"]))
    running = sorted((j for j in jobs if j["state"] != "queued"),
                     key=lambda j: (j["started_at"] or j["placed_at"] or j["submitted_at"], j["id"]))
    return ([{**j, "position": i, "reason": j["reason"] or "not tried yet"} for i, j in enumerate(waiting, 1)]
            + [{**j, "position": None, "reason": None} for j in running])


def _since(t: float | None, now: float) -> str:
    if t is None:
        return "-"
    s = max(0, int(now - t))
    return f"{s // 86400}-{s % 86400 // 3600:02d}:{s % 3600 // 60:02d}" if s >= 86400 else \
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def queue(
    team: Annotated[Optional[str], typer.Option(help="only this team's work (admin tokens)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many jobs")] = 10_000,
    server: ServerOpt = None, as_json: JsonOpt = False,
) -> None:
    """Pending and running work, as `squeue`: waiting jobs in the order they are tried, each with the reason
    it waits (the placement explanation), then running ones."""
    params: dict[str, Any] = {"limit": limit, "active": True}
    if team:
        params["team"] = team
    rows = queue_order(Client(server).call("GET", "/v1/jobs", params=params))
    if as_json:
        emit_json(rows)
        return
    now = time.time()
    t = Table("#", "id", "team", "name", "kind", "GPUs", "prio", "state", "time", "where / why waiting",
              box=None, header_style="bold")
    for j in rows:
        pending = j["state"] == "queued"
        when = j["submitted_at"] if pending else (j["started_at"] or j["placed_at"])
        t.add_row(str(j["position"] or ""), str(j["id"]), j["team"], escape(j["name"]), j["kind"], f"{j['gpus']:,}",
                  str(j["priority"]), "PENDING" if pending else j["state"].upper(), _since(when, now),
                  escape(j["reason"]) if pending else ", ".join(j.get("clusters", [])) or "-")
    out.print(t)
    n = sum(1 for j in rows if j["state"] == "queued")
    out.print(f"{n:,} pending, {len(rows) - n:,} placed or running")


# == status ================================================================================================
def _usd(x: float) -> str:
    return "$" + short(x, 1)


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d")


def status(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """The fleet on one screen: providers, clusters (GPUs used, free, failed), the queue, and (admin) this
    month's spend and the commitments at risk."""
    doc = Client(server).call("GET", "/v1/status")
    if as_json:
        emit_json(doc)
        return
    scope = f" (team {doc['team']})" if doc["team"] else ""
    out.print(f"[bold]{escape(doc['portfolio'] or 'no portfolio loaded')}[/]{scope} at {_when(doc['at'])} UTC")
    t = Table("provider", "clusters", "GPUs", "used", "free", "failed", box=None, header_style="bold")
    for p in doc["providers"]:
        down = f" ({p['clusters_down']} down)" if p["clusters_down"] else ""
        t.add_row(p["provider"], f"{p['clusters']}{down}", f"{p['gpus']:,}", f"{p['used_gpus']:,}",
                  f"{p['free_gpus']:,}", f"[red]{p['failed_gpus']:,}[/]" if p["failed_gpus"] else "0")
    out.print(t)
    clusters = sorted(doc["clusters"], key=lambda c: (-c["gpus"], c["name"]))
    t = Table("cluster", "provider", "GPU", "GPUs", "used", "free", "failed", "", box=None, header_style="bold")
    for c in clusters[:STATUS_CLUSTERS]:
        t.add_row(c["name"], c["provider"], c["gpu"], f"{c['gpus']:,}", f"{c['used_gpus']:,}", f"{c['free_gpus']:,}",
                  f"{c['failed_gpus']:,}", "" if c["up"] else "[red]DOWN[/]")
    out.print(t)
    if len(clusters) > STATUS_CLUSTERS:
        out.print(f"... and {len(clusters) - STATUS_CLUSTERS} smaller clusters (all of them: --json)")
    q = doc["queue"]
    out.print(f"queue: {q['queued']['jobs']:,} waiting ({gpus(q['queued']['gpus'])}), {q['placed']['jobs']:,} "
              f"starting, {q['running']['jobs']:,} running ({gpus(q['running']['gpus'])})")
    if doc["spend"] is None:
        out.print("spend and commitments: an admin token sees them")
        return
    sp = doc["spend"]
    per = ", ".join(f"{p['provider']} {_usd(p['usd'])}" for p in sorted(sp["providers"], key=lambda p: -p["usd"]))
    out.print(f"spend since {_day(sp['since'])}: {_usd(sp['usd'])}" + (f" ({per})" if per else ""))
    risk = doc["commitments_at_risk"]
    if not risk:
        out.print("commitments at risk: none")
        return
    t = Table("commitment at risk", "provider", "committed", "drawn", "on schedule", "pace", "projected unspent",
              "ends", box=None, header_style="bold")
    for k in risk:
        t.add_row(k["contract"], k["provider"], _usd(k["committed_usd"]), _usd(k["drawn_usd"]),
                  _usd(k["on_schedule_usd"]), f"{k['pace']:.0%}", f"[red]{_usd(k['projected_shortfall_usd'])}[/]",
                  str(k["end"]))
    out.print(t)


def register(app: typer.Typer) -> None:
    for f in (submit, jobs, queue, status):
        app.command()(f)
