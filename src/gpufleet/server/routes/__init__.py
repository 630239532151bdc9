"""The API's routes, one module per resource; `create_app` adds each with the shared `Ctx`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import Engine as DbEngine

from ...backends.base import BackendSet
from ..auth import Tokens
from ..control import Control
from ..metrics import Metrics


@dataclass(frozen=True)
class Ctx:
    """What every route module reads: the control loop (writes), the database (reads), tokens, the clock."""

    control: Control
    db: DbEngine
    tokens: Tokens
    clock: Callable[[], float]
    metrics: Metrics
    backends: BackendSet
    principal: Callable[..., Any]        # the FastAPI dependency that turns a bearer token into a Principal
    admin: Callable[..., Any]            # the same, refusing (403) a token that is not an admin's
    run: Callable[[Any], Any]            # send a command to the control loop and await its answer
