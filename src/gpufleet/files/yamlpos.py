"""Parse YAML into plain Python values and remember where each field path sits in the text."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ..model.problems import Path

Positions = dict[Path, tuple[int, int]]  # field path -> (line, column), both 1-based

MAX_NODES = 2_000_000  # guards against alias bombs ("billion laughs") expanding without end


class YamlTooBig(ValueError):
    pass


def parse_yaml(text: str) -> tuple[Any, Positions]:
    """Return the document as plain dicts/lists/scalars and the positions of its keys and items."""
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    doc = yaml.load(text)
    positions: Positions = {}
    budget = [MAX_NODES]
    return _plain(doc, (), positions, budget), positions


def _plain(node: Any, path: Path, pos: Positions, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise YamlTooBig(f"the document expands to more than {MAX_NODES:,} values")
    if isinstance(node, CommentedMap):
        out = {}
        for k, v in node.items():
            key = k if isinstance(k, (str, int)) else str(k)
            try:
                line, col = node.lc.key(k)
                pos[path + (key,)] = (line + 1, col + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            out[key] = _plain(v, path + (key,), pos, budget)
        return out
    if isinstance(node, CommentedSeq):
        out_l = []
        for i, v in enumerate(node):
            try:
                line, col = node.lc.item(i)
                pos[path + (i,)] = (line + 1, col + 1)
            except (KeyError, TypeError, AttributeError, IndexError):
                pass
            out_l.append(_plain(v, path + (i,), pos, budget))
        return out_l
    if isinstance(node, dt.datetime):
        # ruamel gives a datetime subclass; a midnight value with no time written is a date.
        plain = dt.datetime(node.year, node.month, node.day, node.hour, node.minute, node.second,
                            node.microsecond, tzinfo=node.tzinfo)
        return plain
    if isinstance(node, dt.date):
        return dt.date(node.year, node.month, node.day)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def locate(path: Path, positions: Positions) -> tuple[int, int] | None:
    """Position of `path`, or of its nearest ancestor present in the file."""
    for n in range(len(path), 0, -1):
        if path[:n] in positions:
            return positions[path[:n]]
    return None
