"""FastAPI dependencies: services, a database session, the calling user, the caller's task."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from db import tasks, users
from db.models import Task, User
from serve_app.routes import API_PREFIX
from serve_app.security import InvalidToken
from serve_app.services import Services

TOKEN_URL = f"{API_PREFIX}/auth/token"
TASK_NOT_FOUND = "Task not found"

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL)


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def _user_for(token: str, services: Services, session: AsyncSession) -> User:
    try:
        user_id = services.tokens.subject(token)
    except InvalidToken:
        raise unauthorized("The access token is invalid or has expired; log in again.") from None
    user = await users.get_by_id(session, user_id)
    if user is None:
        raise unauthorized("The access token's user no longer exists.")
    return user


async def get_current_user(token: Annotated[str, Depends(_bearer)], services: ServicesDep, session: SessionDep) -> User:
    return await _user_for(token, services, session)


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_streaming_user(token: Annotated[str, Depends(_bearer)], services: ServicesDep) -> User:
    """The caller, checked with a session of its own that is closed at once: a long-lived
    stream must not hold a database connection for its whole life, as `SessionDep` would."""
    async with services.sessions() as session:
        return await _user_for(token, services, session)


StreamingUser = Annotated[User, Depends(get_streaming_user)]


async def require_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Only administrators may do this.")
    return user


AdminUser = Annotated[User, Depends(require_admin)]


async def get_owned_task(task_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Task:
    """The caller's task. Someone else's task is not found, exactly like a missing one."""
    task = await tasks.get_owned(session, task_id, user.id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=TASK_NOT_FOUND)
    return task


OwnedTask = Annotated[Task, Depends(get_owned_task)]
