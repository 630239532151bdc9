"""A fast path for `POST /v1/jobs`, the one route that carries thousands of requests a second.

An ASGI middleware in front of the app: a well-formed submission with a known token is checked with the
same function the FastAPI route uses and sent to the control loop directly, skipping the framework's
routing, dependency and encoding layers (most of a request's cost). Anything else (a bad body, an unknown
token, a refused submission) is replayed to the FastAPI route, so every error answer is the route's own
and the OpenAPI schema stays the route's.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable

from fastapi import HTTPException
from pydantic import BaseModel, ValidationError

from .auth import Principal, Tokens, digest
from .control import Refused, Submit

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$")
_MAX_BODY = 1 << 20


class FastSubmit:
    def __init__(self, tokens: Tokens, body_model: type[BaseModel], prepare: Callable[..., Submit],
                 submitted: Callable[[Submit], Awaitable[tuple[int, bytes]]], clock: Callable[[], float]):
        self.tokens, self.body_model, self.prepare, self.submitted = tokens, body_model, prepare, submitted
        self.clock = clock

    def principal(self, headers: list[tuple[bytes, bytes]]) -> tuple[Principal | None, str | None, bool]:
        """(who, idempotency key, usable): usable is False when the route must judge the request."""
        who, key, ok = None, None, True
        for name, value in headers:
            if name == b"authorization":
                v = value.decode("latin-1")
                if v[:7].lower() == "bearer ":
                    who = self.tokens._cache.get(digest(v[7:].strip()))
            elif name == b"idempotency-key":
                key = value.decode("latin-1")
                ok = 1 <= len(key) <= 200 and bool(_KEY.match(key))
            elif name == b"content-type":
                ok = ok and value.split(b";")[0].strip().lower() == b"application/json"
        return who, key, ok and who is not None

    async def handle(self, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes] | None:
        """The answer, or None to let the FastAPI route answer."""
        who, key, ok = self.principal(headers)
        if not ok or who is None or len(body) > _MAX_BODY:
            return None
        try:
            cmd = self.prepare(who, self.body_model.model_validate_json(body), key, self.clock())
        except (ValidationError, HTTPException, ValueError):
            return None
        try:
            return await self.submitted(cmd)
        except Refused:
            return None  # the route answers refusals in the one error format

    def wrap(self, app: Any) -> Callable:
        async def asgi(scope: dict, receive: Callable, send: Callable) -> None:
            if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/v1/jobs":
                await app(scope, receive, send)
                return
            chunks, more = [], True
            while more:
                msg = await receive()
                if msg["type"] != "http.request":  # the client went away
                    return
                chunks.append(msg.get("body", b""))
                more = msg.get("more_body", False)
            body = b"".join(chunks)
            answer = await self.handle(scope["headers"], body)
            if answer is None:
                sent = False

                async def replay() -> dict:
                    nonlocal sent
                    if not sent:
                        sent = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()
                await app(scope, replay, send)
                return
            status, payload = answer
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
        return asgi
