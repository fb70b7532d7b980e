"""Answering with the finished task: a client that wants its result makes one request.

`Prefer: wait=S` on a submit (RFC 7240, as Replicate and others offer it) and `?wait=S` on a
task hold the request until the task has finished or S seconds have passed, then answer with
the task as it is, with its result once it has succeeded. Waiting holds no database connection
and reads nothing while it waits: the replica's change feed (serve_app/task_changes.py) brings
each change of an awaited task with the task's fields, so only a succeeded task's result is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import uuid

from db import tasks
from db.models import Task, TaskStatus
from serve_app.results import task_results
from serve_app.schemas import TaskPublic, TaskWithResult
from serve_app.services import Services
from serve_app.task_changes import ReadAgain, Subscription, TaskChange

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


def finished(task: Task | TaskPublic) -> bool:
    return TaskStatus(task.status).finished


Followed = dict[uuid.UUID, TaskPublic | None]  # each awaited task as last known; None once deleted


def _apply(change: TaskChange | ReadAgain, current: Followed) -> set[uuid.UUID]:
    """Take in one change of the feed; returns the tasks to read again. A notification carries
    the task's fields, so it needs no read, unless it left fields out. A task that has finished
    or was deleted stays so: a change queued before the read that saw it is older news."""
    if not isinstance(change, TaskChange):
        return {task_id for task_id, task in current.items() if task is not None and not finished(task)}
    known = current.get(change.task_id)
    if change.task_id not in current or known is None or finished(known):
        return set()
    if change.deleted:
        current[change.task_id] = None
    elif change.task is None:
        return {change.task_id}
    else:
        current[change.task_id] = change.task
    return set()


def _unfinished(current: Followed) -> bool:
    return any(task is not None and not finished(task) for task in current.values())


async def wait_for_tasks(
    services: Services, owner_id: uuid.UUID, waited: list[Task], wait_s: float, following_since_stored: Subscription | None = None
) -> list[TaskPublic | None]:
    """These tasks as they are once all have finished (or were deleted: None) or `wait_s` has passed.

    The tasks are read once after subscribing to their changes (a change before that is in no
    notification), unless the caller passes the subscription it made before storing them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    current: Followed = {task.id: TaskPublic.model_validate(task) for task in waited}
    subscribing = services.changes.subscribe(task_ids=current) if following_since_stored is None else contextlib.nullcontext(following_since_stored)
    with subscribing as changes:
        stale = set(current) if following_since_stored is None else set()
        while True:
            if stale := {task_id for task_id in stale if (task := current[task_id]) is not None and not finished(task)}:
                async with services.reads() as session:
                    found = await tasks.get_many_owned(session, list(stale), owner_id)
                current.update({task_id: _public(found.get(task_id)) for task_id in stale})
            remaining = deadline - loop.time()
            if not _unfinished(current) or remaining <= 0:
                return [current[task.id] for task in waited]
            stale = set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    stale = _apply(await changes.next(), current)


def _public(task: Task | None) -> TaskPublic | None:
    return None if task is None else TaskPublic.model_validate(task)


async def with_results(services: Services, found: list[TaskPublic]) -> list[TaskWithResult]:
    """The tasks as the API answers them, each succeeded one with its result."""
    results = {}
    if services.direct is not None:
        results = await task_results(services.direct.results, found)
    elif any(task.status == TaskStatus.succeeded for task in found):
        async with services.reads() as session:
            results = await task_results(functools.partial(tasks.get_results, session), found)
    return [TaskWithResult(**task.model_dump(), result=results.get(task.id)) for task in found]
