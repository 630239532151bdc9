"""Tokens: created, listed and revoked by an admin."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name local aliases.

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...store import tables as T
from ..auth import Principal
from ..schemas import TokenIn, errors
from . import Ctx


def add(app: FastAPI, ctx: Ctx) -> None:
    db, tokens, clock = ctx.db, ctx.tokens, ctx.clock
    Admin = Annotated[Principal, Depends(ctx.admin)]

    # -- tokens -------------------------------------------------------------------------------------------
    @app.post("/v1/tokens", tags=["auth"], status_code=201, responses=errors(400, 401, 403, 404, 422))
    def create_token(body: TokenIn, who: Admin) -> dict[str, Any]:
        if body.admin == (body.team is not None):
            raise HTTPException(422, "give either `team` (a team token) or `admin: true`, not both or neither")
        if body.team is not None:
            with Session(db) as s:
                if s.get(T.Team, body.team) is None:
                    raise HTTPException(404, f"no team {body.team!r}; create it first (PUT /v1/teams/{body.team})")
        token, tid = tokens.create(body.name, body.team, body.admin)
        with Session(db) as s, s.begin():
            s.add(T.Event(at=clock(), actor=who.actor, kind="token_created", team=body.team, job_id=None,
                          message=f"token {tid} ({body.name}) created for "
                                  f"{'admin' if body.admin else 'team ' + str(body.team)}"))
        return {"id": tid, "token": token, "team": body.team, "admin": body.admin, "name": body.name}

    @app.get("/v1/tokens", tags=["auth"], responses=errors(401, 403))
    def list_tokens(who: Admin) -> list[dict[str, Any]]:
        with Session(db) as s:
            return [{"id": t.id, "name": t.name, "team": t.team, "admin": t.admin, "created_at": t.created_at,
                     "revoked_at": t.revoked_at} for t in s.scalars(select(T.Token).order_by(T.Token.id))]

    @app.delete("/v1/tokens/{token_id}", tags=["auth"], responses=errors(401, 403, 404, 409, 422))
    def revoke_token(token_id: Annotated[int, Field(ge=1, le=2**62)], who: Admin) -> dict[str, Any]:
        outcome = tokens.revoke(token_id)
        if outcome == "missing":
            raise HTTPException(404, f"no live token {token_id}")
        if outcome == "last_admin":
            raise HTTPException(409, f"token {token_id} is the last live admin token: revoking it would lock "
                                     f"every admin out; create another admin token first "
                                     f"(POST /v1/tokens with admin: true)")
        with Session(db) as s, s.begin():
            s.add(T.Event(at=clock(), actor=who.actor, kind="token_revoked", team=None, job_id=None,
                          message=f"token {token_id} revoked"))
        return {"id": token_id, "revoked": True}
