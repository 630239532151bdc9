"""Reading user files (scenarios, jobs) at the edge: YAML with positions, clear errors."""

from .loader import FileError, FileProblem, load_job, load_scenario, parse_job, parse_scenario

__all__ = ["FileError", "FileProblem", "load_job", "load_scenario", "parse_job", "parse_scenario"]
