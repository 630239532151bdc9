"""Entry point: the Typer app, its commands, and a last-resort handler so users never see a traceback."""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import Annotated, Any

import typer

from ..devtools.cli import dev_app
from . import demo as demo_cmd
from . import inputs, live, place, reports, simulate, sweep
from . import plan as plan_cmd
from .common import EXIT_FAILURE, err

app = typer.Typer(name="gpufleet", no_args_is_help=True, add_completion=True,
                  help="A control plane for GPU capacity across many clouds: model, place, simulate, plan.",
                  pretty_exceptions_enable=False, rich_markup_mode=None)

def _version(value: bool) -> None:
    if value:
        from .. import __version__
        typer.echo(f"gpufleet {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    """A control plane for GPU capacity across many clouds: model, place, simulate, plan."""


app.command()(inputs.validate)
app.command()(inputs.schema)
app.command()(inputs.catalog)
app.command()(inputs.show)
app.command()(place.place)
app.command()(simulate.simulate)
app.command()(sweep.sweep)
app.command()(plan_cmd.plan)
app.command(cls=demo_cmd.DemoCommand)(demo_cmd.demo)
app.add_typer(reports.report_app, name="report")
live.register(app)
app.add_typer(dev_app, name="dev")


def _name_metavars(cmd: Any) -> Any:
    """Options read `--team TEAM`, `--limit LIMIT`, not `<str>` or `<list[str]>`: a value's metavar is its
    option's name unless it offers choices or names its own. (Typer carries its own click: duck-typed.)"""
    for p in cmd.params:
        kind = getattr(getattr(p, "type_descriptor", None), "annotation", None)
        if getattr(p, "param_type_name", "") == "option" and not p.is_flag and p.metavar is None and p.name \
                and not (isinstance(kind, type) and issubclass(kind, Enum)):
            p.metavar = p.name.strip("_").upper().replace("_", "-")
    for sub in getattr(cmd, "commands", {}).values():
        _name_metavars(sub)
    return cmd


def command() -> Any:
    """The click command the `gpufleet` script runs (the Typer app, with readable metavars)."""
    return _name_metavars(typer.main.get_command(app))


def run() -> None:
    try:
        command()(prog_name="gpufleet")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the last resort: a clear line, never a traceback
        if os.environ.get("GPUFLEET_DEBUG"):
            raise
        err.print(f"[bold red]error:[/] internal error: {type(e).__name__}: {e} (set GPUFLEET_DEBUG=1 for details)")
        sys.exit(EXIT_FAILURE)
