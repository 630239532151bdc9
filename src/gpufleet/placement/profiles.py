"""Placement profiles: named, weighted combinations of scorers. Profiles are data, validated when loaded."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from ..model.base import Model, Name
from .scorers import SCORERS


class Profile(Model):
    name: Name
    weights: dict[str, Annotated[float, Field(ge=0, le=1000)]] = Field(min_length=1)
    description: str = ""

    @field_validator("weights")
    @classmethod
    def _known_scorers(cls, w: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(w) - set(SCORERS))
        if unknown:
            raise ValueError(f"unknown scorer(s) {', '.join(unknown)}; expected some of {', '.join(SCORERS)}")
        if sum(w.values()) <= 0:
            raise ValueError("weights must not all be zero")
        return w

    def normalized(self) -> list[tuple[str, float]]:
        """(scorer, weight) pairs with weights summing to 1, zero weights dropped, in a stable order."""
        total = sum(self.weights.values())
        return [(k, v / total) for k, v in self.weights.items() if v > 0]


BUILTIN_PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile(name="cost", weights={"cost": 0.6, "packing": 0.25, "spread": 0.05, "headroom": 0.1},
            description="cheapest effective cost under the contracts, then packing (the default)"),
    Profile(name="binpack", weights={"packing": 0.7, "cost": 0.3},
            description="fill partly used domains and busy clusters first"),
    Profile(name="spread", weights={"spread": 0.6, "headroom": 0.25, "cost": 0.15},
            description="spread work across providers and keep headroom (inference)"),
    Profile(name="plan", weights={"plan": 0.5, "shadow": 0.35, "packing": 0.15},
            description="follow the planner's assignment and price capacity at its shadow price "
                        "(needs a plan: `--replan`; without one it is cost-like)"),
    Profile(name="list-price", weights={"list_price": 1.0},
            description="cheapest list price only, ignoring contracts (a SkyPilot-like baseline)"),
)}


def get_profile(name: str, extra: dict[str, Profile] | None = None) -> Profile:
    table = {**BUILTIN_PROFILES, **(extra or {})}
    if name not in table:
        raise KeyError(f"unknown placement profile {name!r}; expected one of {', '.join(table)}")
    return table[name]
