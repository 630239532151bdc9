"""The `gpufleet` command: thin Typer commands over the library."""
