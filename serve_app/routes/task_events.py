"""Live task updates as Server-Sent Events: one task until it has finished, or all of the
caller's tasks for as long as the client listens.

A stream reads the database when it opens; after that the replica's one change feed
(serve_app/task_changes.py) tells it of each change, so open streams cost the database nothing
while nothing changes and hold no connection; FastAPI adds keep-alive comments. The routes need
the usual `Authorization: Bearer` header (browsers read them with `fetch()`, since
`EventSource` cannot send headers)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from db import tasks
from db.models import Task, TaskStatus, User
from serve_app.deps import TASK_NOT_FOUND, ReadingUser, ServicesDep
from serve_app.errors import error_responses
from serve_app.schemas import TaskPublic
from serve_app.services import Services
from serve_app.task_changes import ReadAgain, TaskChange

router = APIRouter(tags=["tasks"])

WINDOW = 100  # the per-user stream follows the caller's newest tasks
STREAM_DESCRIPTION = {"description": "`text/event-stream` of `task` events (data: the task as `GET /tasks/{task_id}` returns it)"}


def _task_event(task: Task | TaskPublic) -> ServerSentEvent:
    return ServerSentEvent(event="task", data=TaskPublic.model_validate(task).model_dump(mode="json"))


def _version(task: Task | TaskPublic) -> tuple[str, int]:
    """What makes a change worth an event."""
    return task.status, task.attempts


async def _owned_task_for_stream(task_id: uuid.UUID, user: ReadingUser, services: ServicesDep) -> Task:
    async with services.sessions() as session:
        task = await tasks.get_owned(session, task_id, user.id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=TASK_NOT_FOUND)
    return task


@router.get(
    "/events",  # not /tasks/events: that path would also be `/tasks/{task_id}` with another method
    response_class=EventSourceResponse,
    responses={200: STREAM_DESCRIPTION, **error_responses(401, streaming=True)},
)
async def user_task_events(user: ReadingUser, services: ServicesDep) -> AsyncIterable[ServerSentEvent]:
    """Live updates of the caller's tasks: first a `task` event for each of the newest 100, then
    one whenever a task changes status or attempt, and `deleted` (data `{"id": …}`) when one is
    deleted. Runs until the client disconnects."""
    seen: dict[uuid.UUID, tuple[str, int]] = {}
    with services.changes.subscribe(owner_id=user.id) as changes:
        while True:  # the newest tasks now, and again whenever changes may have been missed
            newest, gone = await _poll_user_tasks(services, user, seen)
            for task in reversed(newest):  # oldest first, as they happened
                if seen.get(task.id) != _version(task):
                    seen[task.id] = _version(task)
                    yield _task_event(task)
            for task_id in gone:
                del seen[task_id]
                yield ServerSentEvent(event="deleted", data={"id": str(task_id)})
            while not isinstance(change := await changes.next(), ReadAgain):
                if change.deleted:
                    if seen.pop(change.task_id, None) is not None:
                        yield ServerSentEvent(event="deleted", data={"id": str(change.task_id)})
                    continue
                changed = change.task or await _read_task(services, change.task_id, user)
                if changed is not None and seen.get(changed.id) != _version(changed):
                    seen[changed.id] = _version(changed)
                    yield _task_event(changed)


async def _read_task(services: Services, task_id: uuid.UUID, user: User) -> TaskPublic | None:
    """A task the change feed named without its fields."""
    async with services.sessions() as session:
        task = await tasks.get_owned(session, task_id, user.id)
    return None if task is None else TaskPublic.model_validate(task)


async def _poll_user_tasks(services: Services, user: User, seen: dict[uuid.UUID, tuple[str, int]]) -> tuple[list[Task], list[uuid.UUID]]:
    """The newest tasks, and which of the tasks followed so far were deleted (rather than merely
    pushed out of the window by newer ones, which are then no longer followed)."""
    async with services.sessions() as session:
        newest = (await tasks.list_owned(session, user.id, status=None, limit=WINDOW, after=None)).tasks
        outside = [task_id for task_id in seen if task_id not in {t.id for t in newest}]
        still_there = await tasks.existing_owned(session, user.id, outside)
    for task_id in still_there:
        del seen[task_id]
    return newest, [task_id for task_id in outside if task_id not in still_there]


@router.get(
    "/tasks/{task_id}/events",
    response_class=EventSourceResponse,
    responses={200: STREAM_DESCRIPTION, **error_responses(401, 404, 422, streaming=True)},
)
async def task_events(
    task: Annotated[Task, Depends(_owned_task_for_stream)], user: ReadingUser, services: ServicesDep
) -> AsyncIterable[ServerSentEvent]:
    """Live updates of one task: a `task` event now and at each change of status or attempt;
    the stream ends after `succeeded` or `failed`, or with `deleted` if the task is deleted."""
    with services.changes.subscribe(task_ids=[task.id]) as changes:
        current = await _read_task(services, task.id, user)  # again, subscribed: no change falls between
        version = None
        while current is not None:
            if _version(current) != version:
                version = _version(current)
                yield _task_event(current)
            if TaskStatus(current.status).finished:
                return
            change = await changes.next()
            if isinstance(change, TaskChange) and change.deleted:
                current = None
            elif isinstance(change, TaskChange) and change.task is not None:
                current = change.task
            else:
                current = await _read_task(services, task.id, user)
        yield ServerSentEvent(event="deleted", data={"id": str(task.id)})
