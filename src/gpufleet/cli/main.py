"""Entry point: the Typer app, its commands, and a last-resort handler so users never see a traceback."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from ..devtools.cli import dev_app
from . import demo as demo_cmd
from . import inputs, live, place, simulate
from . import plan as plan_cmd
from .common import EXIT_FAILURE, err

app = typer.Typer(name="gpufleet", no_args_is_help=True, add_completion=False,
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
app.command()(plan_cmd.plan)
app.command(cls=demo_cmd.DemoCommand)(demo_cmd.demo)
live.register(app)
app.add_typer(dev_app, name="dev")


def run() -> None:
    try:
        app()
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
