"""Changes of tasks for the live event streams and the requests that wait for tasks
(`Prefer: wait`, `?wait=`), one feed per ingress replica however many are open.

- PostgreSQL: one LISTEN connection. A trigger (migration 0005) sends every insertion, change of
  status or attempt, and deletion of a task, with the task's public fields, when its transaction
  commits; the feed hands each to the streams that follow that task or its owner. Streams get
  every change, in order, and query nothing. After the listening connection was lost and is
  back, every subscriber reads its tasks once (what changed meanwhile).
- SQLite: one poller. While anyone subscribes it reads every `poll_interval_s`, in one query
  for them all, the tasks they follow, and hands on those whose status or attempt changed (or
  that are gone). Changes less than `poll_interval_s` apart come as one.

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
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlmodel import col

from db.engine import SessionFactory, is_sqlite
from db.models import Task
from db.notify import TASK_CHANGES_CHANNEL, ChannelListener
from serve_app.schemas import TaskPublic

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000


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
        self.polled = False  # SQLite: whether a poll has read its tasks since it subscribed
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
        """SQLite: the followed tasks, read together, compared with the last read."""
        last = Snapshot()
        while True:
            if not self._subscriptions:
                last = Snapshot()
                self._someone_listens.clear()
                await self._someone_listens.wait()
            await asyncio.sleep(self._poll_interval_s)
            reading = list(self._subscriptions)
            task_ids = {task_id for s in reading for task_id in s.task_ids}
            owner_ids = {s.owner_id for s in reading if s.owner_id is not None}
            if not task_ids and not owner_ids:
                continue
            try:
                async with self._sessions() as session:
                    rows = list(await session.scalars(
                        select(Task).where(or_(col(Task.id).in_(task_ids), col(Task.owner_id).in_(owner_ids)))
                    ))
            except Exception:  # the database is away: try again at the next round
                log.warning("cannot read the followed tasks; trying again", exc_info=True)
                continue
            now = Snapshot.of(rows, task_ids, owner_ids)
            for change in last.changes_to(now, rows):
                self._hand_out(change)
            # A subscriber read its tasks after subscribing, but a change between that read and
            # this first poll of them is in no diff: it reads once more.
            for subscription in reading:
                if not subscription.polled:
                    subscription.polled = True
                    subscription.put(READ_AGAIN)
            last = now


@dataclass
class Snapshot:
    """One read of the SQLite poller: each task's (owner, status, attempts), and what was followed."""

    versions: dict[uuid.UUID, tuple[uuid.UUID, str, int]] = field(default_factory=dict)
    task_ids: set[uuid.UUID] = field(default_factory=set)
    owner_ids: set[uuid.UUID] = field(default_factory=set)

    @classmethod
    def of(cls, rows: list[Task], task_ids: set[uuid.UUID], owner_ids: set[uuid.UUID]) -> Snapshot:
        return cls({t.id: (t.owner_id, t.status, t.attempts) for t in rows}, task_ids, owner_ids)

    def followed(self, task_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
        return task_id in self.task_ids or owner_id in self.owner_ids

    def changes_to(self, now: Snapshot, rows: list[Task]) -> list[TaskChange]:
        """What changed from this read to `now` (whose tasks are `rows`). A task that was not
        followed before is news only if its owner was (it is new), not because someone just
        began to follow it."""
        changes = [
            TaskChange(task_id=t.id, owner_id=t.owner_id, task=TaskPublic.model_validate(t))
            for t in rows
            if self.versions.get(t.id) != now.versions[t.id] and (t.id in self.versions or self.followed(t.id, t.owner_id))
        ]
        changes += [
            TaskChange(task_id=task_id, owner_id=owner_id, task=None, deleted=True)
            for task_id, (owner_id, _, _) in self.versions.items()
            if task_id not in now.versions and now.followed(task_id, owner_id)
        ]
        return changes
