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


def _caller_id(token: str, services: Services) -> uuid.UUID:
    try:
        return services.tokens.subject(token)
    except InvalidToken:
        raise unauthorized("The access token is invalid or has expired; log in again.") from None


def _existing(user: User | None) -> User:
    if user is None:
        raise unauthorized("The access token's user no longer exists.")
    return user


async def get_current_user(token: Annotated[str, Depends(_bearer)], services: ServicesDep, session: SessionDep) -> User:
    """The caller, in the request's session: for routes that change the user."""
    user_id = _caller_id(token, services)
    return _existing(await users.get_by_id(session, user_id))


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_reading_user(token: Annotated[str, Depends(_bearer)], services: ServicesDep) -> User:
    """The caller, read on its own and detached from any session, for routes that only read the
    user: the request's session stays unused until the route needs it, and a long-lived stream
    holds no connection. On PostgreSQL one direct statement (`db.direct`)."""
    user_id = _caller_id(token, services)
    if services.direct is not None:
        return _existing(await services.direct.user(user_id))
    async with services.reads() as session:
        return _existing(await users.get_by_id(session, user_id))


ReadingUser = Annotated[User, Depends(get_reading_user)]


async def require_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Only administrators may do this.")
    return user


AdminUser = Annotated[User, Depends(require_admin)]


async def get_owned_task(task_id: uuid.UUID, user: ReadingUser, session: SessionDep) -> Task:
    """The caller's task. Someone else's task is not found, exactly like a missing one."""
    task = await tasks.get_owned(session, task_id, user.id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=TASK_NOT_FOUND)
    return task


OwnedTask = Annotated[Task, Depends(get_owned_task)]
