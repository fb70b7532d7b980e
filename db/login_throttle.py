"""Failed logins per username, to slow down password guessing.

After `max_failures` failures within `window`, logins for that username are refused for `block`,
doubling with every further failure up to `max_block`. Unknown usernames are counted like known
ones, so the answers do not tell whether an account exists. Other usernames are never affected.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LoginThrottle
from db.types import utcnow


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int
    window: timedelta
    block: timedelta
    max_block: timedelta

    def block_after(self, failures: int) -> timedelta | None:
        """How long to refuse logins after this many failures in the window (None: not yet)."""
        if failures < self.max_failures:
            return None
        return min(self.block * 2 ** (failures - self.max_failures), self.max_block)


def username_key(username: str) -> str:
    return hashlib.sha256(username.encode()).hexdigest()


async def blocked_for(session: AsyncSession, username: str, *, now: datetime | None = None) -> timedelta | None:
    """How much longer logins for `username` are refused, or None if they are allowed."""
    now = now or utcnow()
    blocked_until = await session.scalar(
        select(LoginThrottle.blocked_until).where(LoginThrottle.username_hash == username_key(username))
    )
    if blocked_until is None or blocked_until <= now:
        return None
    return blocked_until - now


async def record_failure(
    session: AsyncSession, username: str, policy: ThrottlePolicy, *, now: datetime | None = None
) -> timedelta | None:
    """Count one failed login (atomically, so concurrent guesses all count). Returns the block
    it starts, if any."""
    now = now or utcnow()
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    statement = insert(LoginThrottle).values(username_hash=username_key(username), failures=1, window_started_at=now)
    window_over = LoginThrottle.window_started_at < now - policy.window
    statement = statement.on_conflict_do_update(
        index_elements=[LoginThrottle.username_hash],
        set_={
            "failures": case((window_over, 1), else_=LoginThrottle.failures + 1),
            "window_started_at": case((window_over, statement.excluded.window_started_at), else_=LoginThrottle.window_started_at),
        },
    ).returning(LoginThrottle.failures)
    failures = (await session.execute(statement)).scalar_one()
    block = policy.block_after(failures)
    if block is not None:
        row = await session.get(LoginThrottle, username_key(username), populate_existing=True)
        row.blocked_until = now + block
    await session.commit()
    return block


async def clear(session: AsyncSession, username: str) -> None:
    """Forget the failures of a username after a successful login."""
    await session.execute(delete(LoginThrottle).where(LoginThrottle.username_hash == username_key(username)))
    await session.commit()


async def purge_stale(session: AsyncSession, policy: ThrottlePolicy, *, now: datetime | None = None) -> int:
    """Delete records whose window and block are both over (they would count as fresh anyway)."""
    now = now or utcnow()
    result = await session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.window_started_at < now - policy.window,
            or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now),
        )
    )
    await session.commit()
    return result.rowcount
