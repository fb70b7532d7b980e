"""Task routes: submit an image, follow the task, fetch its input and result, delete it."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from db import queue, tasks, webhooks
from db.models import Task, TaskStatus, WebhookState
from db.queue import NewInput
from serve_app.annotate import render_png
from serve_app.deps import TASK_NOT_FOUND, OwnedTask, ReadingUser, ServicesDep, SessionDep
from serve_app.errors import error_responses
from serve_app.metrics import task_metrics
from serve_app.results import task_result
from serve_app.routes import API_PREFIX
from serve_app.routes.uploads import IMAGE_PART_OPENAPI, ImageField, read_upload
from serve_app.schemas import (
    NotFinishedBody,
    TaskList,
    TaskPublic,
    TaskResult,
    TaskWithResult,
    WebhookAttempt,
    WebhookStatus,
)
from serve_app.services import Services
from serve_app.task_changes import Subscription
from serve_app.task_log import TaskLog
from serve_app.waiting import MAX_WAIT_S, finished, prefer_wait, wait_for_tasks, with_results
from serve_app.webhooks import MAX_URL_LENGTH, CallbackRefused, check_callback_url

router = APIRouter(prefix="/tasks", tags=["tasks"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any printable ASCII string; repeating a request with the same key returns the same task.",
    ),
]


CallbackUrl = Annotated[
    str | None,
    Form(
        max_length=MAX_URL_LENGTH,
        json_schema_extra={"format": "uri"},  # checked by check_callback_url, whose 422 says what to fix
        description="POST the outcome here once the task has finished (webhook); its host must be on the service's allow-list.",
    ),
]


async def callback_url_once(request: Request) -> None:
    """Refuse a form that names `callback_url` more than once: which one was meant is unknown
    (the form field would otherwise silently be the last)."""
    if (times := len((await request.form()).getlist("callback_url"))) > 1:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"callback_url was sent {times} times: send it once.")


PreferHeader = Annotated[
    str | None,
    Header(
        max_length=200,
        description="`wait=S`: answer once the task has finished (with its result) or after S seconds (at most 60), whichever is first.",
    ),
]
WaitQuery = Annotated[
    float | None,
    Query(ge=0, le=MAX_WAIT_S, description="Answer once the task has finished or after this many seconds (at most 60), whichever is first."),
]


def task_location(task_id: uuid.UUID) -> str:
    return f"{router.prefix}/{task_id}"


def _links_to(task_id: str, **targets: str) -> dict[str, dict[str, object]]:
    """OpenAPI links from a response to the task routes named by operationId (the handler's name,
    see serve_app/api.py), each with its description; `task_id` is a runtime expression such as
    `$response.body#/id`. Clients, and schemathesis' stateful tests, follow them."""
    return {
        "".join(word.capitalize() for word in operation_id.split("_")): {
            "operationId": operation_id,
            "parameters": {"task_id": task_id},
            "description": description,
        }
        for operation_id, description in targets.items()
    }


def _response_links(status_code: int, links: dict[str, dict[str, object]]) -> dict[str, object]:
    return {"responses": {str(status_code): {"links": links}}}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(callback_url_once)],
    response_model=TaskWithResult,
    responses={
        200: {"model": TaskWithResult, "description": "The task finished while the request waited (`Prefer: wait`)."},
        **error_responses(400, 401, 409, 413, 415, 422, 429, 503),
    },
    openapi_extra={
        **IMAGE_PART_OPENAPI,
        **_response_links(202, _links_to(
            "$response.body#/id",
            get_task="Poll the new task.",
            get_task_input="The image just uploaded.",
            get_task_result="Its result, once it has succeeded (409 until then).",
            get_task_result_png="Its result drawn over the image (409 until it has succeeded).",
            task_events="Follow it live until it has finished.",
            get_task_webhook="How its webhook stands.",
            delete_task="Delete it.",
        )),
    },
)
async def create_task(
    image: ImageField, user: ReadingUser, services: ServicesDep, session: SessionDep, response: Response,
    idempotency_key: IdempotencyKey = None,
    callback_url: CallbackUrl = None,
    prefer: PreferHeader = None,
) -> TaskWithResult:
    """Submit an image. Answers at once with the queued task (202); poll it or its result.

    With `Prefer: wait=S` (at most 60) the answer waits until the task has finished or S seconds
    have passed: a finished task comes back with 200 and, when it succeeded, its `result`, so a
    client that wants the result makes one request. The `Location` header names the task. With
    an `Idempotency-Key` already used for the same image the earlier task is returned (marked by
    `Idempotent-Replayed: true`).
    """
    owner_id = user.id  # read now: a rolled-back race below expires the session's objects
    check_callback(callback_url, services)
    upload = await read_upload(image, services.settings.limits)
    task_id = uuid.uuid4()
    # A client that waits follows its task from before it is stored, so the wait need not read
    # the task first to learn what happened to it meanwhile.
    following = services.changes.subscribe(task_ids=[task_id]) if prefer_wait(prefer) is not None else contextlib.nullcontext()
    with following as changes:
        task, created = await enqueue_upload(services, session, owner_id, upload, idempotency_key, callback_url, task_id=task_id)
        if not created:
            response.headers["Idempotent-Replayed"] = "true"
        response.headers["Location"] = API_PREFIX + task_location(task.id)
        [answer] = await answer_submit(services, owner_id, [task], prefer, response, following_since_stored=changes if created else None)
    return answer


def check_callback(callback_url: str | None, services: Services) -> None:
    if callback_url is not None:
        try:
            check_callback_url(callback_url, services.settings.webhooks.allowed_hosts())
        except CallbackRefused as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None


async def enqueue_upload(
    services: Services, session: AsyncSession, owner_id: uuid.UUID, upload: NewInput, idempotency_key: str | None, callback_url: str | None,
    task_id: uuid.UUID | None = None,
) -> tuple[Task, bool]:
    settings = services.settings
    bounds = queue.Bounds(per_user=settings.limits.max_queued_per_user, total=settings.limits.max_queued_total)
    if services.direct is not None and idempotency_key is None:
        # One statement; a keyed submit takes the general path, which may answer with the earlier task.
        task, created = queue.new_task(owner_id, settings.queue.max_attempts, task_id=task_id, callback_url=callback_url), True
        await services.direct.enqueue(task, upload, bounds)
    else:
        task, created = await queue.enqueue(
            session,
            task_id=task_id,
            owner_id=owner_id,
            upload=upload,
            max_attempts=settings.queue.max_attempts,
            bounds=bounds,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
        )
    if created:
        record_accepted(services, task, owner_id, upload)
    return task, created


def record_accepted(services: Services, task: Task, owner_id: uuid.UUID, upload: NewInput) -> None:
    """What follows a stored task: the local dispatcher woken, the metric, the log line."""
    services.wake_dispatcher()
    task_metrics().created.inc()
    TaskLog(task.id, owner_id).info("accepted (%d bytes, %dx%d)", len(upload.data), upload.width, upload.height)


async def answer_submit(
    services: Services, owner_id: uuid.UUID, found: list[Task], prefer: str | None, response: Response,
    following_since_stored: Subscription | None = None,
) -> list[TaskWithResult]:
    """The tasks as a submit answers them: at once (202), or, when the client prefers to wait,
    after waiting (200 once all have finished, with their results; else 202). See
    `wait_for_tasks` for `following_since_stored`."""
    wait_s = prefer_wait(prefer)
    if wait_s is None:
        return [TaskWithResult.model_validate(t) for t in found]
    response.headers["Preference-Applied"] = f"wait={wait_s:g}"
    waited = await wait_for_tasks(services, owner_id, found, wait_s, following_since_stored)
    # A task deleted while the request waited is answered as it last was.
    answered = [now or TaskPublic.model_validate(before) for now, before in zip(waited, found)]
    if answered and all(finished(task) for task in answered):
        response.status_code = status.HTTP_200_OK
    return await with_results(services, answered)


def _encode_cursor(key: tasks.PageKey) -> str:
    raw = json.dumps({"t": key.created_at.isoformat(), "id": str(key.task_id)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tasks.PageKey:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return tasks.PageKey(created_at=datetime.fromisoformat(raw["t"]), task_id=uuid.UUID(raw["id"]))
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="Invalid cursor: pass the `next` value of the previous page."
        ) from exc


@router.get("", response_model=TaskList, responses=error_responses(401, 422))
async def list_tasks(
    user: ReadingUser,
    session: SessionDep,
    status_filter: Annotated[TaskStatus | None, Query(alias="status", description="Only tasks in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="`next` of the previous page.")] = None,
) -> TaskList:
    """The caller's tasks, newest first."""
    after = _decode_cursor(cursor) if cursor else None
    status_value = status_filter.value if status_filter else None
    page = await tasks.list_owned(session, user.id, status=status_value, limit=limit, after=after)
    return TaskList(
        items=[TaskPublic.model_validate(t) for t in page.tasks],
        total=page.total,
        next=_encode_cursor(page.next_key) if page.next_key else None,
    )


@router.get(
    "/{task_id}",
    response_model=TaskWithResult,
    responses=error_responses(401, 404, 422),
    openapi_extra=_response_links(200, _links_to(
        "$response.body#/id",
        get_task_input="The task's image.",
        get_task_result="Its result, once it has succeeded (409 until then).",
        get_task_result_png="Its result drawn over the image (409 until it has succeeded).",
        delete_task="Delete it.",
    )),
)
async def get_task(task: OwnedTask, user: ReadingUser, services: ServicesDep, session: SessionDep, wait: WaitQuery = None) -> TaskWithResult:
    """A task's status, attempts, error and timestamps. With `?wait=S`, answers once the task has
    finished (then with its `result`, if it succeeded) or after S seconds: a long poll."""
    if wait is None:
        return TaskWithResult.model_validate(task)
    owner_id = user.id
    await session.commit()  # end the read's transaction: waiting holds no connection
    [found] = await wait_for_tasks(services, owner_id, [task], wait)
    if found is None:  # deleted while the request waited
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=TASK_NOT_FOUND)
    [answer] = await with_results(services, [found])
    return answer


@router.get(
    "/{task_id}/input",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}, "image/bmp": {}}, "description": "The image as uploaded"},
        **error_responses(401, 404, 422),
    },
)
async def get_task_input(task_id: uuid.UUID, user: ReadingUser, session: SessionDep) -> Response:
    """The uploaded image: the original bytes with their content type."""
    stored = await tasks.get_input(session, task_id, user.id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=TASK_NOT_FOUND)
    return Response(
        content=stored.data,
        media_type=stored.content_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"},
    )


NOT_FINISHED_RESPONSE: dict[int | str, dict[str, object]] = {409: {"model": NotFinishedBody, "description": "The task has no result (yet)"}}


def _refuse_unless_succeeded(task: Task) -> JSONResponse | None:
    """The 409 for a task without a result, with its status (and error, when it failed)."""
    if task.status == TaskStatus.succeeded.value:
        return None
    reason = "The task failed; it has no result." if task.status == TaskStatus.failed.value else "The task has not finished yet; poll again later."
    body = NotFinishedBody(detail=reason, status=TaskStatus(task.status), error=task.error)
    return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_409_CONFLICT)


async def _result_or_404(session: SessionDep, task: Task) -> TaskResult:
    result = await task_result(session, task)
    if result is None:  # deleted since the task was read
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=TASK_NOT_FOUND)
    return result


@router.get(
    "/{task_id}/result",
    response_model=TaskResult,
    responses={**error_responses(401, 404, 422), **NOT_FINISHED_RESPONSE},
)
async def get_task_result(task: OwnedTask, session: SessionDep) -> TaskResult | JSONResponse:
    """Primitives, scene and model versions of a succeeded task; 409 with the status otherwise."""
    if (refusal := _refuse_unless_succeeded(task)) is not None:
        return refusal
    return await _result_or_404(session, task)


@router.get(
    "/{task_id}/result.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The upright image with the boxes, labels and scene drawn"},
        **error_responses(401, 404, 422),
        **NOT_FINISHED_RESPONSE,
    },
)
async def get_task_result_png(task: OwnedTask, session: SessionDep) -> Response:
    """The result drawn over the image: each primitive's rotated box with its class and
    confidence, and the scene; 409 with the status until the task has succeeded."""
    if (refusal := _refuse_unless_succeeded(task)) is not None:
        return refusal
    result = await _result_or_404(session, task)
    stored_input = await tasks.get_input(session, task.id, task.owner_id)
    if stored_input is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=TASK_NOT_FOUND)
    png = await run_in_threadpool(render_png, stored_input.data, result.primitives, result.scene)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/{task_id}/webhook", response_model=WebhookStatus, responses=error_responses(401, 404, 422))
async def get_task_webhook(task: OwnedTask, session: SessionDep) -> WebhookStatus:
    """The task's webhook: its URL, how delivery stands, and every attempt so far."""
    return WebhookStatus(
        callback_url=task.callback_url,
        state=WebhookState(task.webhook_state) if task.webhook_state else None,
        next_attempt_at=task.webhook_next_at if task.webhook_state == WebhookState.retrying.value else None,
        attempts=[WebhookAttempt.model_validate(a) for a in await webhooks.attempts(session, task.id)],
    )


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422),
    openapi_extra=_response_links(204, _links_to(
        "$request.path.task_id",
        get_task="Gone: 404 from now on.",
        get_task_input="Gone with the task: 404.",
        get_task_result="Gone with the task: 404.",
        get_task_result_png="Gone with the task: 404.",
    )),
)
async def delete_task(task_id: uuid.UUID, user: ReadingUser, session: SessionDep) -> Response:
    """Delete a task with its input and result. A result still being computed is discarded."""
    if not await tasks.delete_owned(session, task_id, user.id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=TASK_NOT_FOUND)
    TaskLog(task_id, user.id).info("deleted")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
