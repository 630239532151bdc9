"""Run the CLI in-process the way users see it (exit code, stdout, stderr)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from typer.testing import CliRunner

from gpufleet.cli.main import app


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def gpufleet(*args: str) -> Ran:
    r = CliRunner().invoke(app, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception  # a traceback would reach the user: fail loudly
    return Ran(r.exit_code, r.stdout, r.stderr)
