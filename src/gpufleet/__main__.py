"""`python -m gpufleet` is the `gpufleet` command."""

from gpufleet.cli.main import run

run()
