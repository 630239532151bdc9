"""`python -m gpufleet` is the `gpufleet` command."""

from gpufleet.cli.main import run

if __name__ == "__main__":  # not when a spawned child process imports the main module
    run()
