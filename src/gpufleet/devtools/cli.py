"""`gpufleet dev ...`: developer tools from the command line."""

from __future__ import annotations

import typer

dev_app = typer.Typer(help="Developer tools: local Slurm clusters for tests, demos and tries.",
                      no_args_is_help=True)


@dev_app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                   "help_option_names": []}, add_help_option=False)
def slurm(ctx: typer.Context) -> None:
    """A real multi-node Slurm cluster on this machine: `gpufleet dev slurm up|down|status|env DIR ...`
    (`gpufleet dev slurm --help` for the options). Needs apt-get install slurmctld slurmd slurm-client."""
    from .slurm_dev import main
    raise typer.Exit(main(list(ctx.args), prog="gpufleet dev slurm"))
