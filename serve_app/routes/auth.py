"""`POST /auth/token`: OAuth2 password flow, with failed logins throttled per username."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from db import login_throttle, users
from serve_app.deps import ServicesDep, SessionDep, unauthorized
from serve_app.errors import error_responses
from serve_app.schemas import Token

router = APIRouter(prefix="/auth", tags=["auth"])


def _too_many_failures(seconds: float) -> HTTPException:
    wait = max(1, math.ceil(seconds))
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=f"Too many failed logins for this username; try again in {wait} seconds.",
        headers={"Retry-After": str(wait)},
    )


@router.post("/token", response_model=Token, responses=error_responses(401, 422, 429))
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, services: ServicesDep) -> Token:
    """Exchange a username and password for a bearer token. After repeated failures for one
    username, its logins are refused for a while (429 with `Retry-After`)."""
    # Refused before hashing: a guessing flood costs no Argon2 time while blocked.
    if (remaining := await login_throttle.blocked_for(session, form.username)) is not None:
        raise _too_many_failures(remaining.total_seconds())
    user = await users.get_by_username(session, form.username)
    # Unknown users are checked against a dummy hash, so both failures take as long.
    ok, new_hash = await run_in_threadpool(services.passwords.verify, form.password, user.hashed_password if user else None)
    if user is None or not ok:
        await login_throttle.record_failure(session, form.username, services.settings.auth.login_policy())
        raise unauthorized("Incorrect username or password.")
    await login_throttle.clear(session, form.username)
    if new_hash is not None:  # stored with older hashing parameters: upgrade it now
        await users.set_password_hash(session, user, new_hash)
    return Token(access_token=services.tokens.issue(user.id), expires_in=int(services.tokens.ttl.total_seconds()))
