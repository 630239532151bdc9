"""A problem found in an input: where it is (a field path) and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    message: str

    @property
    def where(self) -> str:
        return format_path(self.path)


def format_path(path: Path) -> str:
    """`("clusters", 3, "ramp", 1, "domains")` -> `clusters[3].ramp[1].domains`."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


class InvalidInput(Exception):
    """Raised with every problem found, never only the first."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems
