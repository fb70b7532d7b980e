"""`POST /users`: administrators create accounts; `/users/me`: the caller and their webhook secret."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from starlette.concurrency import run_in_threadpool

from db import users, webhooks
from serve_app.deps import AdminUser, CurrentUser, ReadingUser, ServicesDep, SessionDep
from serve_app.errors import error_responses
from serve_app.schemas import UserCreate, UserPublic, WebhookSecret

router = APIRouter(prefix="/users", tags=["users"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserPublic, responses=error_responses(400, 401, 403, 409, 422))
async def create_user(body: UserCreate, _admin: AdminUser, session: SessionDep, services: ServicesDep) -> UserPublic:
    """Create a user (administrators only)."""
    if body.password.casefold() == body.username.casefold():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="The password must differ from the username.")
    hashed = await run_in_threadpool(services.passwords.hash, body.password)  # Argon2 is deliberately slow
    try:
        user = await users.create(session, username=body.username, hashed_password=hashed, is_admin=body.is_admin)
    except users.UserExists:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"User {body.username!r} already exists.") from None
    return UserPublic.model_validate(user)


@router.get("/me", response_model=UserPublic, responses=error_responses(401))
async def get_me(user: ReadingUser) -> UserPublic:
    """Who the token belongs to."""
    return UserPublic.model_validate(user)


@router.get("/me/webhook-secret", response_model=WebhookSecret, responses=error_responses(401))
async def get_webhook_secret(user: CurrentUser, session: SessionDep) -> WebhookSecret:
    """The key your webhooks are signed with (HMAC-SHA256), made on first request."""
    return WebhookSecret(secret=await webhooks.secret_for(session, user))


@router.post("/me/webhook-secret", response_model=WebhookSecret, responses=error_responses(401))
async def rotate_webhook_secret(user: CurrentUser, session: SessionDep) -> WebhookSecret:
    """Replace the key; deliveries from now on are signed with the new one."""
    return WebhookSecret(secret=await webhooks.secret_for(session, user, rotate=True))
