"""Prompt wake-ups on PostgreSQL: enqueue sends NOTIFY, dispatchers LISTEN.

A dispatcher then starts a new task within milliseconds instead of at its next poll. If the
listening connection drops, it reconnects; meanwhile the dispatcher's poll still finds work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "primscene_tasks"
RECONNECT_S = 2.0

log = logging.getLogger(__name__)


async def notify_new_task(session: AsyncSession) -> None:
    """Queue a notification; PostgreSQL delivers it when the transaction commits."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {CHANNEL}"))


class TaskListener:
    """Calls `on_task` whenever a task is enqueued anywhere (PostgreSQL only)."""

    def __init__(self, database_url: str, on_task: Callable[[], None]) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._on_task = on_task
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="task listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen_forever(self) -> None:
        while True:
            try:
                connection = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("cannot listen for new tasks (%s); retrying", type(exc).__name__)
                await asyncio.sleep(RECONNECT_S)
                continue
            try:
                await connection.add_listener(CHANNEL, lambda *_: self._on_task())
                self.connected.set()
                while not connection.is_closed():
                    await asyncio.sleep(RECONNECT_S)
            except (OSError, asyncpg.PostgresError):
                pass
            finally:
                self.connected.clear()
                if not connection.is_closed():
                    await connection.close(timeout=1)
            await asyncio.sleep(RECONNECT_S)
