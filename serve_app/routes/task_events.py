"""Live task updates as Server-Sent Events: one task until it has finished, or all of the
caller's tasks for as long as the client listens.

Each stream looks at the database every `events_poll_interval_s` with a short session of its
own, so an open stream holds no connection in between; FastAPI adds keep-alive comments. The
routes need the usual `Authorization: Bearer` header (browsers read them with `fetch()`, since
`EventSource` cannot send headers)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from db import tasks
from db.models import Task, TaskStatus, User
from serve_app.deps import TASK_NOT_FOUND, ServicesDep, StreamingUser
from serve_app.errors import error_responses
from serve_app.schemas import TaskPublic
from serve_app.services import Services

router = APIRouter(tags=["tasks"])

WINDOW = 100  # the per-user stream follows the caller's newest tasks
STREAM_DESCRIPTION = {"description": "`text/event-stream` of `task` events (data: the task as `GET /tasks/{task_id}` returns it)"}


def _task_event(task: Task) -> ServerSentEvent:
    return ServerSentEvent(event="task", data=TaskPublic.model_validate(task).model_dump(mode="json"))


def _version(task: Task) -> tuple[str, int]:
    """What makes a change worth an event."""
    return task.status, task.attempts


async def _owned_task_for_stream(task_id: uuid.UUID, user: StreamingUser, services: ServicesDep) -> Task:
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
async def user_task_events(user: StreamingUser, services: ServicesDep) -> AsyncIterable[ServerSentEvent]:
    """Live updates of the caller's tasks: first a `task` event for each of the newest 100, then
    one whenever a task changes status or attempt, and `deleted` (data `{"id": …}`) when one is
    deleted. Runs until the client disconnects."""
    seen: dict[uuid.UUID, tuple[str, int]] = {}
    while True:
        newest, gone = await _poll_user_tasks(services, user, seen)
        for task in reversed(newest):  # oldest first, as they happened
            if seen.get(task.id) != _version(task):
                seen[task.id] = _version(task)
                yield _task_event(task)
        for task_id in gone:
            del seen[task_id]
            yield ServerSentEvent(event="deleted", data={"id": str(task_id)})
        await asyncio.sleep(services.settings.queue.events_poll_interval_s)


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
    task: Annotated[Task, Depends(_owned_task_for_stream)], user: StreamingUser, services: ServicesDep
) -> AsyncIterable[ServerSentEvent]:
    """Live updates of one task: a `task` event now and at each change of status or attempt;
    the stream ends after `succeeded` or `failed`, or with `deleted` if the task is deleted."""
    version = _version(task)
    yield _task_event(task)
    while not TaskStatus(task.status).finished:
        await asyncio.sleep(services.settings.queue.events_poll_interval_s)
        async with services.sessions() as session:
            current = await tasks.get_owned(session, task.id, user.id)
        if current is None:
            yield ServerSentEvent(event="deleted", data={"id": str(task.id)})
            return
        task = current
        if _version(task) != version:
            version = _version(task)
            yield _task_event(task)
