"""Answering with the finished task: a client that wants its result makes one request.

`Prefer: wait=S` on a submit (RFC 7240, as Replicate and others offer it) and `?wait=S` on a
task hold the request until the task has finished or S seconds have passed, then answer with
the task as it is, with its result once it has succeeded. Waiting holds no database connection
and sends no query until the replica's change feed (serve_app/task_changes.py) tells of a change
of an awaited task: its finish, a retry, or its deletion.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid

from db import tasks
from db.models import Task, TaskStatus
from serve_app.results import task_results
from serve_app.schemas import TaskPublic, TaskWithResult
from serve_app.services import Services
from serve_app.task_changes import Subscription, TaskChange

MAX_WAIT_S = 60.0


def prefer_wait(header: str | None) -> float | None:
    """The `wait=S` preference of a `Prefer` header, at most MAX_WAIT_S; None when there is none
    or it is not a number (a preference the server cannot honour is ignored, as RFC 7240 says)."""
    for preference in (header or "").split(","):
        name, _, value = preference.split(";")[0].strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        try:
            seconds = float(value.strip().strip('"'))
        except ValueError:
            return None
        return min(seconds, MAX_WAIT_S) if math.isfinite(seconds) and seconds >= 0 else None
    return None


def finished(task: Task) -> bool:
    return TaskStatus(task.status).finished


async def _next_worth_reading(changes: Subscription, timeout_s: float) -> None:
    """Until a change that may end the wait (a task finished, was deleted, or the feed asks to
    read again), or `timeout_s`: a task that merely started running is not read again."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                change = await changes.next()
                if not isinstance(change, TaskChange) or change.deleted or change.task is None or change.task.status.finished:
                    return


def _unfinished(current: dict[uuid.UUID, Task | None]) -> list[uuid.UUID]:
    return [task_id for task_id, task in current.items() if task is not None and not finished(task)]


async def wait_for_tasks(services: Services, owner_id: uuid.UUID, waited: list[Task], wait_s: float) -> list[Task | None]:
    """These tasks re-read until all have finished (or were deleted: None) or `wait_s` has passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    current: dict[uuid.UUID, Task | None] = {task.id: task for task in waited}
    with services.changes.subscribe(task_ids=current) as changes:
        while True:  # read after subscribing, then after each change: none falls between
            if unfinished := _unfinished(current):
                async with services.sessions() as session:
                    found = await tasks.get_many_owned(session, unfinished, owner_id)
                current.update({task_id: found.get(task_id) for task_id in unfinished})
            remaining = deadline - loop.time()
            if not _unfinished(current) or remaining <= 0:
                return [current[task.id] for task in waited]
            await _next_worth_reading(changes, remaining)


async def with_results(services: Services, found: list[Task]) -> list[TaskWithResult]:
    """The tasks as the API answers them, each succeeded one with its result."""
    results = {}
    if any(task.status == TaskStatus.succeeded.value for task in found):
        async with services.sessions() as session:
            results = await task_results(session, found)
    return [
        TaskWithResult(**TaskPublic.model_validate(task).model_dump(), result=results.get(task.id)) for task in found
    ]
