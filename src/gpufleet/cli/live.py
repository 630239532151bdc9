"""Live control plane from the command line: `gpufleet serve`, and the client verbs that talk to it.

Client exit codes: 0 ok, 1 failure (server unreachable, server error, no such job), 2 bad input (bad
file, request refused as invalid), 4 refused (missing, unknown or under-privileged token).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ..files import FileError, load_scenario
from ..files.loader import read_text
from .client import DEFAULT_SERVER, EXIT_REFUSED, Client, _fail  # noqa: F401 (EXIT_REFUSED: part of the CLI's interface)
from .common import EXIT_BAD_INPUT, EXIT_FAILURE, emit_json, err, escape, gpus, out, report_file_error

ServerOpt = Annotated[Optional[str], typer.Option("--server", metavar="URL", help="server URL [env GPUFLEET_SERVER; default "
                                                  f"{DEFAULT_SERVER}]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(text: str, option: str) -> float:
    """`90`, `900s`, `15m`, `6h`, `1d` as seconds (at least 10 s)."""
    t = text.strip().lower()
    unit = _UNITS.get(t[-1:], None)
    try:
        value = float(t[:-1] if unit else t) * (unit or 1.0)
    except ValueError:
        raise _bad(f"{option}: expected a duration such as 6h, 1d or 900s, found {text!r}") from None
    if not 10 <= value <= 366 * 86400:
        raise _bad(f"{option}: expected 10 s .. 366 days, found {text!r}")
    return value


# == serve =================================================================================================
def serve(
    db: Annotated[Optional[str], typer.Option(help="database URL: sqlite:///PATH or postgresql://...; "
                                              "default SQLite in the user data dir [env GPUFLEET_DB]")] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    backend: Annotated[str, typer.Option(help="default execution backend for clusters that name none "
                                         "(local, ray, fake)")] = "local",
    scenario: Annotated[Optional[str], typer.Option(help="scenario file to load as the portfolio at start")] = None,
    data_dir: Annotated[Optional[str], typer.Option(help="where job logs and checkpoints live "
                                                    "[env GPUFLEET_DATA_DIR]")] = None,
    poll: Annotated[float, typer.Option(help="seconds between backend polls")] = 1.0,
    profile: Annotated[Optional[str], typer.Option(help="placement profile (default: the scenario's)")] = None,
    replan_every: Annotated[Optional[str], typer.Option(help="make a plan now and then every DURATION (e.g. 6h, "
                                                         "1d, 900s) for the plan profile to follow")] = None,
    access_log: Annotated[bool, typer.Option(help="log every HTTP request")] = False,
    fast_path: Annotated[bool, typer.Option(help="answer well-formed submissions without the framework's "
                                            "layers (off: every request through the FastAPI route)")] = True,
    backends_file: Annotated[Optional[str], typer.Option("--backends", help="YAML file of named backends "
                             "(name: {kind: slurm|ray|local|fake, options...}) that clusters can name")] = None,
) -> None:
    """Run the control-plane server (API, scheduler, backends). The first admin token may be given in
    GPUFLEET_ADMIN_TOKEN; it is stored hashed."""
    import logging

    import uvicorn

    from ..backends.base import BackendError
    from ..server.app import create_app, settings_from_env
    if scenario is not None:
        try:
            load_scenario(scenario)
        except FileError as e:
            report_file_error(e)
    if not 0 < port < 65536:
        raise _bad(f"--port: expected 1..65535, found {port}")
    if not 0.01 <= poll <= 3600:
        raise _bad(f"--poll: expected 0.01..3600 seconds, found {poll}")
    every = _duration(replan_every, "--replan-every") if replan_every is not None else None
    try:
        settings = settings_from_env(db_url=db, data_dir=data_dir, backend=backend, scenario=scenario,
                                     poll_s=poll, profile=profile, tune_gc=True, replan_every_s=every)
        if backends_file is not None:
            from ..backends.base import BackendSet
            from ..backends.registry import backends_from_file, make_backend
            named = backends_from_file(backends_file, settings.data_dir)
            if backend not in named:
                named[backend] = make_backend(backend, settings.data_dir)
            settings.backends = BackendSet(default=backend, backends=named)
        app = create_app(settings)
    except BackendError as e:
        raise _bad(f"--backend: {e}") from None
    except Exception as e:  # bad URL, missing driver
        _fail(f"cannot open the database: {e}")
    _hold_database(app)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    safe_db = _redact_url(settings.db_url)
    err.print(f"gpufleet serve: http://{host}:{port} (db {safe_db}, backend {backend}); API docs at /docs")
    uvicorn.run(app.state.fast_submit.wrap(app) if fast_path else app, host=host, port=port, access_log=access_log, log_level="info",
                loop="auto", http="auto", proxy_headers=False,
                timeout_graceful_shutdown=10)


def _hold_database(app: Any) -> None:
    """Take this server's hold on its database before listening (exit 1 naming the holder if another live
    server has it); the control loop keeps it until it stops."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..server.holder import HeldElsewhere, hold
    try:
        app.state.control.holder = hold(app.state.db)
    except HeldElsewhere as e:
        _fail(str(e))
    except (SQLAlchemyError, OSError) as e:
        _fail(f"cannot open the database: {e}")


def _redact_url(url: str) -> str:
    """Never print a database password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in cred else url
    return url


# == the client: cli/client.py


def _bad(message: str) -> typer.Exit:
    err.print(f"[red]error[/] {escape(message)}")
    return typer.Exit(EXIT_BAD_INPUT)


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def job(job_id: Annotated[int, typer.Argument(help="job id")], server: ServerOpt = None,
        as_json: JsonOpt = False) -> None:
    """Show one job: state, placements, lost work."""
    j = Client(server).call("GET", f"/v1/jobs/{job_id}")
    if as_json:
        emit_json(j)
        return
    out.print(f"job {j['id']} {j['name']} ({j['kind']}, team {j['team']}): [bold]{j['state']}[/]"
              + (f" - {escape(j['reason'])}" if j["reason"] else ""))
    out.print(f"  {gpus(j['gpus'])}, priority {j['priority']}, attempt {j['attempt']}, "
              f"lost {j['lost_gpu_hours']:,.2f} GPU-hours; key {j['key'] or '-'}")
    out.print(f"  submitted {_when(j['submitted_at'])}, placed {_when(j['placed_at'])}, "
              f"started {_when(j['started_at'])}, finished {_when(j['finished_at'])}"
              + (f", exit {j['exit_code']}" if j["exit_code"] is not None else ""))
    for p in j["placements"]:
        parts = ", ".join(f"d{d}:{n}" for d, n in p["parts"])
        out.print(f"  attempt {p['attempt']}: {p['request']} on {p['cluster']} ({p['provider']}, {p['backend']}) "
                  f"[{parts}] {p['outcome'] or 'active'}")


def cancel(job_id: Annotated[int, typer.Argument(help="job id")], server: ServerOpt = None,
           as_json: JsonOpt = False) -> None:
    """Cancel a job (stops its work if it runs)."""
    res = Client(server).call("POST", f"/v1/jobs/{job_id}/cancel", idempotent=True)  # cancelling twice is once
    if as_json:
        emit_json(res)
        return
    out.print(f"job {res['id']}: {res['state']}")


def logs(job_id: Annotated[int, typer.Argument(help="job id")],
         tail: Annotated[Optional[int], typer.Option(help="only the last N lines")] = None,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the job ends")] = False,
         server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Print a job's captured output (its latest attempt)."""
    c = Client(server)
    params = {"tail": tail} if tail else None
    text = c.call("GET", f"/v1/jobs/{job_id}/logs", params=params, expect_json=False)
    if as_json:
        emit_json({"id": job_id, "logs": text})
        return
    typer.echo(text, nl=False)
    seen = len(text)
    while follow:
        state = c.call("GET", f"/v1/jobs/{job_id}")["state"]
        time.sleep(1.0)
        text = c.call("GET", f"/v1/jobs/{job_id}/logs", expect_json=False)
        typer.echo(text[seen:], nl=False)
        seen = len(text)
        follow = state not in ("succeeded", "failed", "cancelled")


def events(job_id: Annotated[Optional[int], typer.Option("--job", help="only this job's events")] = None,
           after: Annotated[int, typer.Option(help="only events after this id")] = 0,
           limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 1000,
           follow: Annotated[bool, typer.Option("--follow", "-f", help="print the latest events oldest first, "
                                                "then each new one as it happens, until Ctrl-C")] = False,
           server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """The audit log, newest first: every decision and state change, with who and why."""
    params: dict[str, Any] = {"after": after, "limit": limit, "newest": True}
    if job_id is not None:
        params["job"] = job_id
    client = Client(server)
    res = client.call("GET", "/v1/events", params=params)
    if follow:
        _follow_events(client, params, list(reversed(res)), as_json)
        return
    if as_json:
        emit_json(res)
        return
    for e in res:
        _print_event(e)


def _print_event(e: dict) -> None:
    job_part = f" job {e['job_id']}" if e["job_id"] is not None else ""
    out.print(f"{e['id']:>6} {_when(e['at'])} {e['kind']:<16} {e['actor']}{job_part}: {escape(e['message'])}")


FOLLOW_POLL_S = 1.0


def _follow_events(client: Client, params: dict[str, Any], first: list[dict], as_json: bool) -> None:
    """Like `tail -f`: what there is, oldest first, then what comes (one JSON document per line with --json)."""
    last = params["after"]
    batch = first
    try:
        while True:
            for e in batch:
                if as_json:
                    print(json.dumps(e), flush=True)
                else:
                    _print_event(e)
                last = max(last, e["id"])
            time.sleep(FOLLOW_POLL_S)
            batch = client.call("GET", "/v1/events", params={**params, "after": last, "newest": False})
    except KeyboardInterrupt:
        return


# == admin verbs ===========================================================================================
token_app = typer.Typer(help="API tokens (admin).", no_args_is_help=True)
portfolio_app = typer.Typer(help="The portfolio the server schedules on.", no_args_is_help=True)
team_app = typer.Typer(help="Teams and their GPU quotas (admin).", no_args_is_help=True)
capacity_app = typer.Typer(help="Mark capacity failed or repaired; find and buy Capacity Blocks (admin).",
                           no_args_is_help=True)


@token_app.command("create")
def token_create(team: Annotated[Optional[str], typer.Option(help="team the token acts for")] = None,
                 admin: Annotated[bool, typer.Option("--admin", help="an admin token instead")] = False,
                 name: Annotated[str, typer.Option(help="a label for the token")] = "token",
                 server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Create a token; it is shown once (the server keeps only its hash)."""
    if (team is None) == (not admin):
        raise _bad("give --team T for a team token, or --admin")
    res = Client(server).call("POST", "/v1/tokens", json_body={"team": team, "admin": admin, "name": name})
    if as_json:
        emit_json(res)
        return
    out.print(res["token"])
    err.print(f"token {res['id']} for {'admin' if admin else 'team ' + str(team)}; store it now, it is not shown again")


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="token id")], server: ServerOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Revoke a token."""
    res = Client(server).call("DELETE", f"/v1/tokens/{token_id}")
    emit_json(res) if as_json else out.print(f"token {token_id} revoked")


@token_app.command("list")
def token_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """List tokens (never their secrets)."""
    res = Client(server).call("GET", "/v1/tokens")
    if as_json:
        emit_json(res)
        return
    for t in res:
        who = "admin" if t["admin"] else f"team {t['team']}"
        out.print(f"{t['id']:>4} {t['name']:<20} {who:<24} {'revoked' if t['revoked_at'] else 'live'}")


@portfolio_app.command("load")
def portfolio_load(file: Annotated[str, typer.Argument(help="scenario file")], server: ServerOpt = None,
                   as_json: JsonOpt = False) -> None:
    """Load a scenario file as the portfolio (running work stays where it runs)."""
    try:
        load_scenario(file)
        text = read_text(file)
    except FileError as e:
        report_file_error(e)
    res = Client(server).call("PUT", "/v1/portfolio", json_body={"scenario": text, "source": Path(file).name})
    emit_json(res) if as_json else out.print(f"portfolio {res['name']} loaded ({res['clusters']} clusters)")


@portfolio_app.command("show")
def portfolio_show(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Clusters, their health and free GPUs."""
    res = Client(server).call("GET", "/v1/portfolio")
    if as_json:
        emit_json(res)
        return
    t = Table("cluster", "provider", "region", "GPU", "backend", "up", "GPUs", "free", box=None,
              header_style="bold", title=f"{res['name']} (version {res['version']})")
    for c in res["clusters"]:
        t.add_row(c["name"], c["provider"], c["region"], c["gpu"], c["backend"], "yes" if c["up"] else "DOWN",
                  f"{c['gpus']:,}", f"{c['free_gpus']:,}")
    out.print(t)


@team_app.command("set")
def team_set(name: Annotated[str, typer.Argument(help="team name")],
             quota: Annotated[int, typer.Option("--quota", help="GPU quota")],
             cohort: Annotated[Optional[str], typer.Option(help="cohort to borrow idle quota in")] = None,
             borrowing_limit: Annotated[Optional[int], typer.Option(help="most GPUs it may borrow")] = None,
             server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Create a team or change its quota."""
    res = Client(server).call("PUT", f"/v1/teams/{name}", json_body={
        "quota_gpus": quota, "cohort": cohort, "borrowing_limit": borrowing_limit})
    emit_json(res) if as_json else out.print(f"team {res['name']}: quota {res['quota_gpus']:,} GPUs")


@team_app.command("list")
def team_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Teams with quota and GPUs in use."""
    res = Client(server).call("GET", "/v1/teams")
    if as_json:
        emit_json(res)
        return
    for t in res:
        out.print(f"{t['name']:<20} quota {t['quota_gpus']:>10,}  used {t['used_gpus']:>10,}  cohort {t['cohort'] or '-'}")


def _capacity(failed: bool, cluster: str | None, provider: str | None, domain: int | None, reason: str,
              server: str | None, as_json: bool) -> None:
    if (cluster is None) == (provider is None) or (domain is not None and cluster is None):
        raise _bad("name --cluster C (optionally with --domain D) or --provider P")
    scope = "provider" if provider else ("domain" if domain is not None else "cluster")
    body = {"scope": scope, "target": provider or cluster, "domain": domain, "failed": failed, "reason": reason}
    res = Client(server).call("POST", "/v1/capacity", json_body=body)
    if as_json:
        emit_json(res)
        return
    what = f"{scope} {body['target']}" + (f" domain {domain}" if domain is not None else "")
    if failed:
        out.print(f"{what} marked failed; requeued jobs: {', '.join(map(str, res['requeued'])) or 'none'}")
    else:
        out.print(f"{what} back in service")


@capacity_app.command("fail")
def capacity_fail(cluster: Annotated[Optional[str], typer.Option(help="cluster")] = None,
                  provider: Annotated[Optional[str], typer.Option(help="provider")] = None,
                  domain: Annotated[Optional[int], typer.Option(help="NVLink domain index in the cluster")] = None,
                  reason: Annotated[str, typer.Option(help="why (kept in the audit log)")] = "marked failed",
                  server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Mark capacity failed: work on it is requeued from its last checkpoint and placed elsewhere."""
    _capacity(True, cluster, provider, domain, reason, server, as_json)


@capacity_app.command("repair")
def capacity_repair(cluster: Annotated[Optional[str], typer.Option(help="cluster")] = None,
                    provider: Annotated[Optional[str], typer.Option(help="provider")] = None,
                    domain: Annotated[Optional[int], typer.Option(help="NVLink domain index")] = None,
                    server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Put failed capacity back in service."""
    _capacity(False, cluster, provider, domain, "repaired", server, as_json)


@capacity_app.command("blocks")
def capacity_blocks(backend: Annotated[str, typer.Argument(help="a backend that sells Capacity Blocks (aws)")],
                    instance_type: Annotated[str, typer.Option(help="e.g. p5.48xlarge, u-p6e-gb200x72")],
                    count: Annotated[int, typer.Option(min=1, help="instances")] = 1,
                    hours: Annotated[int, typer.Option(min=1, help="duration in hours")] = 24,
                    server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Capacity Block offerings the backend can buy, cheapest first."""
    res = Client(server).call("GET", f"/v1/backends/{backend}/capacity-blocks",
                              params={"instance_type": instance_type, "count": count, "hours": hours})
    if as_json:
        emit_json(res)
        return
    t = Table("offering", "type", "count", "zone", "start", "hours", "upfront USD", box=None, header_style="bold")
    for o in res["offerings"]:
        fee = o["upfront_fee_usd"]
        t.add_row(o["offering_id"], o["instance_type"], str(o["count"]), o["availability_zone"] or "-",
                  str(o["start"]), str(o["hours"]), f"{fee:,.2f}" if fee is not None else "-")
    out.print(t if res["offerings"] else "no offerings")


@capacity_app.command("buy-block")
def capacity_buy_block(backend: Annotated[str, typer.Argument(help="the backend that found the offering")],
                       offering: Annotated[str, typer.Argument(help="offering id from `capacity blocks`")],
                       cluster: Annotated[Optional[str], typer.Option(
                           help="cluster the block is for (default: the backend's only one)")] = None,
                       max_usd: Annotated[Optional[float], typer.Option(
                           min=0, help="refuse an offering dearer than this")] = None,
                       server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Buy a Capacity Block; its upfront fee is recorded and billed under the provider's contracts."""
    res = Client(server).call("POST", f"/v1/backends/{backend}/capacity-blocks",
                              json_body={"offering_id": offering, "cluster": cluster, "max_usd": max_usd},
                              exits={409: EXIT_FAILURE})   # bought before: a failure, not bad input (docs/cli.md)
    if as_json:
        emit_json(res)
        return
    out.print(f"bought capacity block {res['reservation']['id']} for {res['cluster']} ({res['provider']}): "
              f"${res['usd']:,.2f}")


def spend(since: Annotated[Optional[str], typer.Option(help="from this date/time (UTC; default: the first "
                                                         "portfolio loaded)")] = None,
          until: Annotated[Optional[str], typer.Option(help="until this date/time (UTC; default: now)")] = None,
          server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """What the fleet has cost: usage billed under the contracts plus fees, per provider and contract (admin)."""
    params = {k: v for k, v in (("since", since), ("until", until)) if v}
    res = Client(server).call("GET", "/v1/spend", params=params)
    if as_json:
        emit_json(res)
        return
    out.print(f"spend {_when(res['since'])} .. {_when(res['until'])} UTC: [bold]${res['total_usd']:,.2f}[/] "
              f"(usage ${res['usage_usd']:,.2f}, fees ${res['fees_usd']:,.2f})")
    t = Table("contract", "kind", "provider", "usage USD", "fees USD", "total USD", "pace", box=None,
              header_style="bold")
    for k in res["contracts"]:
        pace = f"{k['pace']:.0%} of schedule" if k.get("pace") is not None else "-"
        t.add_row(k["contract"], k["kind"], k["provider"], f"{k['usage_usd']:,.2f}", f"{k['fees_usd']:,.2f}",
                  f"{k['usd']:,.2f}", pace)
    out.print(t)
    if res["list_price_usd"] or res["fees_outside_contracts_usd"]:
        out.print(f"outside any contract: ${res['list_price_usd']:,.2f} at list price, "
                  f"${res['fees_outside_contracts_usd']:,.2f} in fees")


def backends(as_json: JsonOpt = False) -> None:
    """Execution backends this installation knows, and whether each is usable here (and why not)."""
    from ..backends.registry import BACKENDS
    rows = []
    for info in BACKENDS.values():
        ok, why = info.usable()
        rows.append({"name": info.name, "usable": ok, "why_not": why or None, "extra": info.extra,
                     "summary": info.summary})
    if as_json:
        emit_json(rows)
        return
    t = Table("backend", "usable", "extra", "what", "why not", box=None, header_style="bold")
    for r in rows:
        t.add_row(r["name"], "yes" if r["usable"] else "no", r["extra"] or "-", r["summary"], escape(r["why_not"] or ""))
    out.print(t)


def register(app: typer.Typer) -> None:
    from . import ops  # submit, jobs, queue, status: they use this module's options
    app.command()(serve)
    ops.register(app)
    for f in (job, cancel, logs, events):
        app.command()(f)
    app.command()(backends)
    app.command()(spend)
    app.add_typer(token_app, name="token")
    app.add_typer(portfolio_app, name="portfolio")
    app.add_typer(team_app, name="team")
    app.add_typer(capacity_app, name="capacity")
