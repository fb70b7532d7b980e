"""Prompt wake-ups on PostgreSQL, through LISTEN/NOTIFY.

- `primscene_tasks`: tasks were enqueued (sent by a trigger, migration 0007); dispatchers start
  them within milliseconds instead of at their next poll.
- `primscene_task_changes`: any change of a task (inserted, status or attempt changed,
  deleted), sent by a trigger; an ingress hands it to the event streams and the requests that
  wait for that task (serve_app/task_changes.py).

A notification is sent when its transaction commits, so a listener never hears of a change it
cannot yet read. If the listening connection drops, it reconnects; meanwhile the dispatcher's
own poll still finds new tasks, and the change feed tells everyone who follows tasks to read them
again once it listens again (`on_connect`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy.engine import make_url

CHANNEL = "primscene_tasks"
# Sent by a trigger on `tasks` (migration 0005) for every insertion, change of status or attempt,
# and deletion; the payload is JSON: the task's public fields and its owner.
TASK_CHANGES_CHANNEL = "primscene_task_changes"
RECONNECT_S = 2.0

log = logging.getLogger(__name__)


class ChannelListener:
    """Calls `on_payload(payload)` for every notification on `channel` (PostgreSQL only)."""

    def __init__(
        self, database_url: str, channel: str, on_payload: Callable[[str], None], *, on_connect: Callable[[], None] | None = None
    ) -> None:
        """`on_connect` is called each time the listener is (again) listening: what was sent
        while it was not, it never hears."""
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._channel = channel
        self._on_payload = on_payload
        self._on_connect = on_connect
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name=f"listener {self._channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen_forever(self) -> None:
        while True:
            try:
                connection = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("cannot listen on %s (%s); retrying", self._channel, type(exc).__name__)
                await asyncio.sleep(RECONNECT_S)
                continue
            try:
                await connection.add_listener(self._channel, lambda _c, _pid, _channel, payload: self._on_payload(payload))
                self.connected.set()
                if self._on_connect is not None:
                    self._on_connect()
                while not connection.is_closed():
                    await asyncio.sleep(RECONNECT_S)
            except (OSError, asyncpg.PostgresError):
                pass
            finally:
                self.connected.clear()
                if not connection.is_closed():
                    await connection.close(timeout=1)
            await asyncio.sleep(RECONNECT_S)


class TaskListener(ChannelListener):
    """Calls `on_task` whenever a task is enqueued anywhere (PostgreSQL only)."""

    def __init__(self, database_url: str, on_task: Callable[[], None]) -> None:
        super().__init__(database_url, CHANNEL, lambda _payload: on_task())
