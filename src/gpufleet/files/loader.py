"""Load scenario and job files; turn every failure into problems naming file, line, column and field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ..catalog import Catalog, bundled_catalog
from ..model.checks import build_portfolio
from ..model.job import JobSpec
from ..model.problems import InvalidInput, Path, Problem, format_path
from ..model.scenario import Portfolio, Scenario
from .onepass import prune
from .yamlpos import Positions, YamlTooBig, locate, parse_yaml

MAX_FILE_BYTES = 64 * 1024 * 1024
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class FileProblem:
    file: str
    message: str
    path: str = ""
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}" + (f":{self.col}" if self.col is not None else "")
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.col, "field": self.path,
                "message": self.message}


class FileError(Exception):
    """A file was rejected; `problems` lists everything wrong with it."""

    def __init__(self, problems: list[FileProblem]):
        super().__init__("; ".join(str(p) for p in problems[:3]))
        self.problems = problems


def read_text(file: str) -> str:
    p = FsPath(file)
    try:
        if p.is_dir():
            raise FileError([FileProblem(file, "is a directory, expected a YAML file")])
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise FileError([FileProblem(file, f"is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}")])
        data = p.read_bytes()
    except FileError:
        raise
    except FileNotFoundError:
        raise FileError([FileProblem(file, "no such file")]) from None
    except OSError as e:
        raise FileError([FileProblem(file, f"cannot be read: {e.strerror or e}")]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileError([FileProblem(file, f"is not UTF-8 text (bad byte at offset {e.start})")]) from None


def _yaml(text: str, file: str) -> tuple[Any, Positions]:
    if not text.strip():
        raise FileError([FileProblem(file, "is empty; expected a YAML mapping")])
    if "\x00" in text:
        raise FileError([FileProblem(file, "contains NUL bytes; expected YAML text")])
    try:
        doc, pos = parse_yaml(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        raise FileError([FileProblem(file, f"invalid YAML: {what}",
                                     line=mark.line + 1 if mark else None,
                                     col=mark.column + 1 if mark else None)]) from None
    except (YAMLError, YamlTooBig, ValueError, TypeError) as e:
        raise FileError([FileProblem(file, f"invalid YAML: {str(e).splitlines()[0] if str(e) else type(e).__name__}")]) from None
    except RecursionError:
        raise FileError([FileProblem(file, "invalid YAML: nested too deeply")]) from None
    if doc is None:
        raise FileError([FileProblem(file, "is empty (only comments); expected a YAML mapping")])
    if not isinstance(doc, dict):
        raise FileError([FileProblem(file, f"expected a mapping of fields at the top level, found "
                                           f"{_kind(doc)}", line=1, col=1)])
    return doc, pos


def _kind(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number",
            bool: "true/false", type(None): "nothing"}.get(type(v), type(v).__name__)


def _data_path(loc: tuple, doc: Any) -> Path:
    """Map a pydantic error location onto the document, dropping union tags such as 'training'."""
    out: list[str | int] = []
    node = doc
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and (
                part == node.get("kind") or "[" in part or part in ("str", "int", "list", "dict")):
            continue  # a discriminator tag or union member name, not a field
        elif isinstance(node, (dict, list)) or node is None:
            out.append(part)  # a missing field: name it
            node = None
        else:
            continue
    return tuple(out)


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _pydantic_problems(err: ValidationError, doc: Any, file: str, pos: Positions) -> list[FileProblem]:
    out = []
    for e in err.errors(include_url=False):
        path = _data_path(tuple(e["loc"]), doc)
        msg = e["msg"].replace("Input should be ", "expected ").replace("Value error, ", "")
        field, sep, rest = msg.partition(": ")
        whole = isinstance(e.get("input"), dict)   # a check of a whole item: never print the item back
        if whole and sep and field.isidentifier():
            path, msg = path + (field,), rest   # "tp: ..." from a whole-item check: point at `tp`
        if e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see `gpufleet schema`)"
        elif "input" in e and e["type"] not in ("union_tag_invalid",) and not whole:
            msg = f"{msg}; found {_short(e['input'])}"
        line_col = locate(path, pos)
        out.append(FileProblem(file, msg, format_path(path), *(line_col or (None, None))))
    return out


def _problems(problems: list[Problem], file: str, pos: Positions) -> list[FileProblem]:
    return [FileProblem(file, p.message, p.where, *(locate(p.path, pos) or (None, None))) for p in problems]


def _validate(model: type[M], doc: Any, file: str, pos: Positions) -> M:
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        raise FileError(_pydantic_problems(e, doc, file, pos)) from None


def _scenario(doc: Any, pos: Positions, file: str, catalog: Catalog | None) -> Portfolio:
    try:
        scenario = Scenario.model_validate(doc)
    except ValidationError as e:
        found = _pydantic_problems(e, doc, file, pos) + _rest(doc, e, pos, file, catalog)
        raise FileError(sorted(found, key=lambda p: (p.line is None, p.line or 0, p.col or 0))) from None
    try:
        return build_portfolio(scenario, catalog or bundled_catalog())
    except InvalidInput as e:
        raise FileError(_problems(e.problems, file, pos)) from None


def _rest(doc: Any, err: ValidationError, pos: Positions, file: str, catalog: Catalog | None) -> list[FileProblem]:
    """The cross-reference problems of the items that passed their own fields (files/onepass.py)."""
    pruned = prune(doc, err)
    if pruned is None:
        return []
    try:
        rest = Scenario.model_validate(pruned.doc)
    except ValidationError:   # what is left still fails its fields: nothing more can be said
        return []
    try:
        build_portfolio(rest, catalog or bundled_catalog(),
                        partial=bool(pruned.index.keys() & {"clusters", "gpu_types", "providers"}))
    except InvalidInput as e:
        kept = [Problem(pruned.original(p.path), p.message) for p in e.problems if not pruned.follows(p)]
        return _problems(kept, file, pos)
    return []


def parse_scenario(text: str, file: str = "<scenario>", catalog: Catalog | None = None) -> Portfolio:
    return _scenario(*_yaml(text, file), file, catalog)


def parse_job(text: str, file: str = "<job>") -> JobSpec:
    doc, pos = _yaml(text, file)
    return _validate(JobSpec, doc, file, pos)


def load_scenario(file: str, catalog: Catalog | None = None) -> Portfolio:
    return parse_scenario(read_text(file), file, catalog)


def load_job(file: str) -> JobSpec:
    return parse_job(read_text(file), file)


def load_any(file: str) -> Portfolio | JobSpec:
    """A scenario (it has `clusters`) or a job file, read and parsed once (what `validate` checks)."""
    doc, pos = _yaml(read_text(file), file)
    if "clusters" in doc:
        return _scenario(doc, pos, file, None)
    return _validate(JobSpec, doc, file, pos)
