"""Changes of tasks for the live event streams and the requests that wait for tasks
(`Prefer: wait`, `?wait=`), one feed per ingress replica however many are open.

- PostgreSQL: one LISTEN connection. A trigger (migration 0005) sends every insertion, change of
  status or attempt, and deletion of a task, with the task's public fields, when its transaction
  commits; the feed hands each to the streams that follow that task or its owner. Streams get
  every change, in order, and query nothing. After the listening connection was lost and is
  back, every subscriber reads its tasks once (what changed meanwhile).
- SQLite: one poller. Triggers (migration 0008) log every change with the same payload as
  PostgreSQL's NOTIFY; while anyone subscribes the poller reads, every `poll_interval_s` and in
  one query for them all, what was logged since its last read, and hands each change on in
  order: a state shorter than the interval is not skipped, only handed on up to that much later.

A stream that falls behind by more than QUEUE_LIMIT changes is told to read its tasks again
instead, so a slow client holds a bounded amount of memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlmodel import col

from db.engine import SessionFactory, is_sqlite
from db.models import TaskChangeLog
from db.notify import TASK_CHANGES_CHANNEL, ChannelListener
from serve_app.schemas import TaskPublic

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
# SQLite's change log: rows read per poll, how many the poller keeps for replicas that lag, and
# how often it prunes the rest (every PRUNE_EVERY_POLLS polls, about a minute at 0.05 s).
LOG_READ_LIMIT = 1000
LOG_KEPT = 10_000
PRUNE_EVERY_POLLS = 1000


@dataclass(frozen=True)
class TaskChange:
    task_id: uuid.UUID
    owner_id: uuid.UUID
    task: TaskPublic | None  # None when deleted, or when the notification left fields out
    deleted: bool = False


class ReadAgain:
    """Changes may have been missed (the listener reconnected, or the stream fell behind)."""


READ_AGAIN = ReadAgain()


class Subscription:
    """What one stream or waiting request follows (some tasks, or every task of an owner), and
    the changes for it."""

    def __init__(self, *, task_ids: frozenset[uuid.UUID] = frozenset(), owner_id: uuid.UUID | None = None) -> None:
        self.task_ids, self.owner_id = task_ids, owner_id
        self._changes: asyncio.Queue[TaskChange | ReadAgain] = asyncio.Queue()

    def wants(self, change: TaskChange) -> bool:
        return change.task_id in self.task_ids or change.owner_id == self.owner_id

    def put(self, item: TaskChange | ReadAgain) -> None:
        if self._changes.qsize() >= QUEUE_LIMIT:
            while not self._changes.empty():
                self._changes.get_nowait()
            item = READ_AGAIN
        self._changes.put_nowait(item)

    async def next(self) -> TaskChange | ReadAgain:
        return await self._changes.get()


class TaskChangeFeed:
    def __init__(self, database_url: str, sessions: SessionFactory, *, poll_interval_s: float) -> None:
        self._sessions = sessions
        self._poll_interval_s = poll_interval_s
        self._subscriptions: set[Subscription] = set()
        self._listener = (
            None if is_sqlite(database_url)
            else ChannelListener(database_url, TASK_CHANGES_CHANNEL, self._on_notify, on_connect=self._read_again)
        )
        self._poller: asyncio.Task[None] | None = None
        self._someone_listens = asyncio.Event()

    def start(self) -> None:
        if self._listener is not None:
            self._listener.start()
        else:
            self._poller = asyncio.create_task(self._poll_forever(), name="task-change poller")

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)

    @property
    def subscribers(self) -> int:
        """Open event streams and waiting requests of this replica."""
        return len(self._subscriptions)

    @contextmanager
    def subscribe(self, *, task_ids: Iterable[uuid.UUID] = (), owner_id: uuid.UUID | None = None) -> Iterator[Subscription]:
        """Changes of these tasks or of an owner's tasks, from now on: subscribe before reading
        what is shown or awaited first, so that no change falls between the two."""
        subscription = Subscription(task_ids=frozenset(task_ids), owner_id=owner_id)
        self._subscriptions.add(subscription)
        self._someone_listens.set()
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    def _hand_out(self, change: TaskChange) -> None:
        for subscription in self._subscriptions:
            if subscription.wants(change):
                subscription.put(change)

    def _read_again(self) -> None:
        for subscription in self._subscriptions:
            subscription.put(READ_AGAIN)

    def _on_notify(self, payload: str) -> None:
        """Every change of every task reaches every replica: what nobody follows is dropped
        before its fields are parsed."""
        if not self._subscriptions:
            return
        try:
            fields = json.loads(payload)
            task_id, owner_id = uuid.UUID(fields["id"]), uuid.UUID(fields["owner_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a task-change notification that is not ours: %.200s", payload)
            return
        deleted = bool(fields.get("deleted"))
        bare = TaskChange(task_id=task_id, owner_id=owner_id, task=None, deleted=deleted)
        interested = [s for s in self._subscriptions if s.wants(bare)]
        if not interested:
            return
        try:
            task = None if deleted or fields.get("partial") else TaskPublic.model_validate(fields)
        except ValidationError:  # the fields are read from the database instead
            task = None
        change = TaskChange(task_id=task_id, owner_id=owner_id, task=task, deleted=deleted)
        for subscription in interested:
            subscription.put(change)

    async def _poll_forever(self) -> None:
        """SQLite: hand on what the triggers logged since the last read, in order."""
        last: int | None = None  # the last change handed on; None while nobody follows anything
        polls = 0
        while True:
            if not self._subscriptions:
                last = None
                self._someone_listens.clear()
                await self._someone_listens.wait()
            await asyncio.sleep(self._poll_interval_s)
            try:
                async with self._sessions() as session:
                    if last is None:
                        # From now on; who subscribed before this read may have missed a change.
                        last = await session.scalar(select(func.coalesce(func.max(col(TaskChangeLog.seq)), 0))) or 0
                        self._read_again()
                        continue
                    rows = (await session.execute(
                        select(col(TaskChangeLog.seq), col(TaskChangeLog.payload)).where(col(TaskChangeLog.seq) > last)
                        .order_by(col(TaskChangeLog.seq)).limit(LOG_READ_LIMIT)
                    )).all()
                    polls += 1
                    if polls % PRUNE_EVERY_POLLS == 0:
                        await session.execute(delete(TaskChangeLog).where(col(TaskChangeLog.seq) <= last - LOG_KEPT))
                        await session.commit()
            except Exception:  # the database is away: try again at the next round
                log.warning("cannot read the task change log; trying again", exc_info=True)
                continue
            if rows and rows[0].seq != last + 1:  # pruned before this replica read them
                self._read_again()
            for row in rows:
                self._on_notify(row.payload)
            if rows:
                last = rows[-1].seq
