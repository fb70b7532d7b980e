"""`POST /auth/token`: OAuth2 password flow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from db import users
from serve_app.deps import ServicesDep, SessionDep, unauthorized
from serve_app.errors import error_responses
from serve_app.schemas import Token
from serve_app.security import verify_password

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token", response_model=Token, responses=error_responses(401, 422))
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, services: ServicesDep) -> Token:
    """Exchange a username and password for a bearer token."""
    user = await users.get_by_username(session, form.username)
    ok, new_hash = await run_in_threadpool(verify_password, form.password, user.hashed_password if user else None)
    if user is None or not ok:
        raise unauthorized("Incorrect username or password.")
    if new_hash is not None:  # stored with older hashing parameters: upgrade it now
        await users.set_password_hash(session, user, new_hash)
    return Token(access_token=services.tokens.issue(user.id), expires_in=int(services.tokens.ttl.total_seconds()))
