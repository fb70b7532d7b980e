"""Wakes the requests that wait for tasks to finish (`Prefer: wait` on submit, `?wait=` on a
task), with one feed per ingress replica however many requests wait.

- PostgreSQL: one LISTEN connection; the dispatcher's finishing transaction sends the ids.
- SQLite: one poller that asks, every `poll_interval_s` and only while someone waits, which of
  the awaited tasks have finished, in one query.

A waiter re-reads its task from the database after every wake-up and at least every
`RECHECK_S`, so a notification lost while the listener reconnects costs time, never a result.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlmodel import col

from db.engine import SessionFactory, is_sqlite
from db.models import Task, TaskStatus
from db.notify import FINISHED_CHANNEL, ChannelListener, parse_finished

RECHECK_S = 2.0
FINISHED = (TaskStatus.succeeded.value, TaskStatus.failed.value)


class FinishedFeed:
    def __init__(self, database_url: str, sessions: SessionFactory, *, poll_interval_s: float = 0.05) -> None:
        self._sessions = sessions
        self._poll_interval_s = poll_interval_s
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._listener = None if is_sqlite(database_url) else ChannelListener(database_url, FINISHED_CHANNEL, self._on_notify)
        self._poller: asyncio.Task[None] | None = None
        self._someone_waits = asyncio.Event()

    def start(self) -> None:
        if self._listener is not None:
            self._listener.start()
        else:
            self._poller = asyncio.create_task(self._poll_forever(), name="finished-task poller")

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)

    @contextmanager
    def watch(self, task_ids: list[uuid.UUID]) -> Iterator[asyncio.Event]:
        """An event set when any of these tasks may have finished. Taken before the task is read,
        so a finish between the read and the wait is not missed."""
        event = asyncio.Event()
        for task_id in task_ids:
            self._waiters.setdefault(task_id, set()).add(event)
        self._someone_waits.set()
        try:
            yield event
        finally:
            for task_id in task_ids:
                waiting = self._waiters.get(task_id)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[task_id]

    def _finished(self, task_ids: list[uuid.UUID]) -> None:
        for task_id in task_ids:
            for event in self._waiters.get(task_id, ()):
                event.set()

    def _on_notify(self, payload: str) -> None:
        try:
            self._finished(parse_finished(payload))
        except ValueError:  # not ours: ignore rather than break the listener
            pass

    async def _poll_forever(self) -> None:
        while True:
            if not self._waiters:
                self._someone_waits.clear()
                await self._someone_waits.wait()
            await asyncio.sleep(self._poll_interval_s)
            awaited = list(self._waiters)
            if not awaited:
                continue
            try:
                async with self._sessions() as session:
                    done = list(await session.scalars(select(col(Task.id)).where(col(Task.id).in_(awaited), col(Task.status).in_(FINISHED))))
            except Exception:  # the database is away: waiters re-check on their own
                continue
            self._finished(done)


async def wait_until(event: asyncio.Event, timeout_s: float) -> None:
    """Wait for `event` at most `timeout_s` (and at most RECHECK_S, after which the caller reads again)."""
    try:
        await asyncio.wait_for(event.wait(), timeout=max(0.0, min(timeout_s, RECHECK_S)))
    except TimeoutError:
        pass
    event.clear()
