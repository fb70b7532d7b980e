"""User accounts."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import User


class UserExists(Exception):
    pass


async def get_by_username(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == username))


async def get_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def create(session: AsyncSession, *, username: str, hashed_password: str, is_admin: bool = False) -> User:
    user = User(username=username, hashed_password=hashed_password, is_admin=is_admin)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise UserExists(username) from exc
    return user


async def set_password_hash(session: AsyncSession, user: User, hashed_password: str) -> None:
    user.hashed_password = hashed_password
    await session.commit()
