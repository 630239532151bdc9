"""`gpufleet report`: simulation results kept on the server, for the dashboard's Simulations page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .client import Client
from .common import emit_json, escape, out
from .live import JsonOpt, ServerOpt, _bad, _when

report_app = typer.Typer(help="Simulation reports on the server (its dashboard shows them).", no_args_is_help=True)


@report_app.command("upload")
def report_upload(file: Annotated[str, typer.Argument(help="a `gpufleet simulate --json` document")],
                  title: Annotated[Optional[str], typer.Option(help="its title (default: the file's name)")] = None,
                  server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Keep a simulation result on the server: a team token's for its team, an admin's for admins."""
    path = Path(file)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise _bad(f"{file}: cannot read it ({e.strerror or e})")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(f"{file}: not JSON ({e}); write one with `gpufleet simulate SCENARIO --json {file}`")
    if not isinstance(doc, dict):
        raise _bad(f"{file}: expected a `gpufleet simulate --json` document (an object), not {type(doc).__name__}")
    name = (title or path.stem)[:200]
    res = Client(server).call("POST", "/v1/reports", json_body={"title": name, "doc": doc})
    if as_json:
        emit_json(res)
        return
    out.print(f"report {res['id']} uploaded: {escape(res['title'])} ({res['runs']} run(s) of "
              f"{escape(str(res['scenario']))}); open the dashboard's Simulations page")


@report_app.command("list")
def report_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Simulation reports on the server, newest first (a team token sees its team's)."""
    res = Client(server).call("GET", "/v1/reports")
    if as_json:
        emit_json(res)
        return
    for r in res:
        out.print(f"{r['id']:>5}  {_when(r['at'])}  {escape(r['title'])}  ({r['runs']} run(s), "
                  f"{escape(str(r['scenario']))}, by {escape(r['actor'])})")
    if not res:
        out.print("no reports")
