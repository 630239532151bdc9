"""Shared helpers for CLI commands: consoles, exit codes, JSON output, loading files with clean errors."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from ..files import FileError, load_job, load_scenario
from ..model.job import JobSpec
from ..model.scenario import Portfolio

# Exit codes are part of the public interface (docs/cli.md).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_UNPLACEABLE = 3

# Piped output gets a wide fixed width so tables do not wrap into unreadable columns.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def gpus(n: int) -> str:
    """`1 GPU`, `8 GPUs`, `16,384 GPUs`."""
    return f"{n:,} GPU" if n == 1 else f"{n:,} GPUs"


def short(x: float, digits: int = 2) -> str:
    """A large number, short: 12.3k, 4.56M, 7.89B (below a thousand, whole)."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:,.{digits}f}{unit}"
    return f"{x:,.0f}"


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(code)


def bad_input(message: str) -> typer.Exit:
    """Print a bad-input error; the caller raises the returned exit (code 2)."""
    err.print(f"[red]error[/] {escape(message)}")
    return typer.Exit(EXIT_BAD_INPUT)


def report_file_error(e: FileError) -> NoReturn:
    for p in e.problems:
        err.print(f"[red]error[/] {escape(str(p))}")
    raise typer.Exit(EXIT_BAD_INPUT)


def escape(s: str) -> str:
    from rich.markup import escape as _e
    return _e(s)


def scenario_or_exit(file: str) -> Portfolio:
    try:
        return load_scenario(file)
    except FileError as e:
        report_file_error(e)


def job_or_exit(file: str) -> JobSpec:
    try:
        return load_job(file)
    except FileError as e:
        report_file_error(e)


def example_path(name: str) -> str:
    """Path of a bundled example: inside the installed package, or the checkout's examples/."""
    packaged = resources.files("gpufleet") / "examples" / name
    if packaged.is_file():
        return str(packaged)
    here = Path(__file__).resolve().parents[3] / "examples" / name
    if here.is_file():
        return str(here)
    fail(f"bundled example {name!r} not found; reinstall gpufleet")
