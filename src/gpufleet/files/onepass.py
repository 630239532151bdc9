"""Every independent problem of a scenario in one pass. When some list items fail their own fields (a
cluster with a bad `domain_size`), the cross-reference checks still run over the rest of the file, and what
only follows from the failed items (a contract naming that cluster) is not reported twice."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..model.problems import Path, Problem

COLLECTIONS = ("gpu_types", "providers", "clusters", "contracts", "teams", "workloads")


class Pruned:
    """The document without the list items that failed their fields, and how to map back."""

    def __init__(self, doc: dict, bad: dict[str, set[int]]):
        self.doc = dict(doc)
        self.index: dict[str, dict[int, int]] = {}   # collection -> pruned index -> original index
        self.names: set[str] = set()                 # names of the items left out
        for key, idx in bad.items():
            items = doc[key]
            keep = [i for i in range(len(items)) if i not in idx]
            self.doc[key] = [items[i] for i in keep]
            self.index[key] = dict(enumerate(keep))
            self.names |= {str(items[i]["name"]) for i in idx if isinstance(items[i], dict) and items[i].get("name")}

    def original(self, path: Path) -> Path:
        if len(path) >= 2 and path[0] in self.index and isinstance(path[1], int):
            return (path[0], self.index[path[0]].get(path[1], path[1])) + tuple(path[2:])
        return path

    def follows(self, p: Problem) -> bool:
        """A problem that only says a left-out item is missing ("unknown cluster 'x'")."""
        return any(f"{n!r}" in p.message for n in self.names)


def prune(doc: Any, err: ValidationError) -> Pruned | None:
    """None when a failure lies outside the named collections' items (then cross-checks would guess)."""
    if not isinstance(doc, dict):
        return None
    bad: dict[str, set[int]] = {}
    for e in err.errors(include_url=False):
        loc = e["loc"]
        if len(loc) < 2 or loc[0] not in COLLECTIONS or not isinstance(loc[1], int) \
                or not isinstance(doc.get(loc[0]), list):
            return None
        bad.setdefault(str(loc[0]), set()).add(loc[1])
    return Pruned(doc, bad)
