"""Developer tools shipped with the package: local Slurm clusters for tests, demos and tries."""
