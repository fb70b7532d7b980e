"""Batch submit: several images in one request, one task each (`POST /api/v1/batches`).

Not `/tasks/batch`: that path would also be `/tasks/{task_id}`, so a wrong method there would be
answered as a bad task id instead of 405 (the same reason the user's event stream is `/events`).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, HTTPException, Response, status

from db import queue
from db.models import Task, TaskStatus
from db.queue import NewInput
from serve_app.deps import ReadingUser, ServicesDep
from serve_app.errors import error_responses, refusal
from serve_app.routes.tasks import (
    CallbackUrl,
    IdempotencyKey,
    PreferHeader,
    answer_submit,
    callback_url_once,
    check_callback,
    enqueue_upload,
    record_accepted,
)
from serve_app.routes.uploads import IMAGES_PART_OPENAPI, ImagesField, part_problem, read_upload
from serve_app.schemas import BatchItem, BatchSubmitted
from serve_app.services import Services
from serve_app.uploads import UploadRejected
from serve_app.waiting import prefer_wait

router = APIRouter(prefix="/batches", tags=["tasks"])
BATCH_PATH = router.prefix  # under the API prefix; the body-size limit names it too


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(callback_url_once)],
    response_model=BatchSubmitted,
    responses={
        200: {"model": BatchSubmitted, "description": "Every accepted task finished while the request waited (`Prefer: wait`)."},
        **error_responses(400, 401, 413, 422, 503),
    },
    openapi_extra=IMAGES_PART_OPENAPI,
)
async def create_tasks(
    images: ImagesField, user: ReadingUser, services: ServicesDep, response: Response,
    idempotency_key: IdempotencyKey = None,
    callback_url: CallbackUrl = None,
    prefer: PreferHeader = None,
) -> BatchSubmitted:
    """Submit several images in one request: one task per image, as if each had been sent to
    `POST /tasks` on its own, in order.

    Each image is checked on its own: one that is refused (too large, not an image, corrupt,
    your queue full) refuses only itself, and its item carries the status code and reason a
    single submit would have answered. The answer is 202 when the request was read (even if
    every image was refused: see `refused`). With an `Idempotency-Key` K, image i is submitted
    with the key `K:i`, so repeating the request returns the same tasks. `callback_url` and
    `Prefer: wait=S` apply to every task (the answer is 200 when all accepted tasks have finished).
    """
    owner_id = user.id
    limits = services.settings.limits
    if len(images) > limits.max_batch_images:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"A batch may have at most {limits.max_batch_images} images; this one has {len(images)}. Send fewer per request.",
        )
    check_callback(callback_url, services)
    items: list[BatchItem] = []
    valid: list[tuple[int, NewInput]] = []  # position in `items`, upload
    for index, image in enumerate(images):
        if (problem := part_problem(image)) is not None:
            items.append(BatchItem(index=index, filename=None, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=problem))
            continue
        assert not isinstance(image, str)
        try:
            valid.append((len(items), await read_upload(image, limits)))
            items.append(BatchItem(index=index, filename=image.filename, status_code=status.HTTP_202_ACCEPTED))
        except UploadRejected as exc:
            items.append(BatchItem(index=index, filename=image.filename, status_code=exc.status_code, detail=exc.detail))
    outcomes = await _store(services, owner_id, valid, idempotency_key, callback_url)
    accepted: list[tuple[int, Task]] = []
    for (position, _), outcome in zip(valid, outcomes):
        if isinstance(outcome, Task):
            accepted.append((position, outcome))
        else:
            status_code, detail = refusal(outcome) or (status.HTTP_422_UNPROCESSABLE_CONTENT, str(outcome))
            items[position] = items[position].model_copy(update={"status_code": status_code, "detail": detail})
    answered = await answer_submit(services, owner_id, [task for _, task in accepted], prefer, response)
    for (position, _), task in zip(accepted, answered):
        waited_out = prefer_wait(prefer) is not None and TaskStatus(task.status).finished
        code = status.HTTP_200_OK if waited_out else status.HTTP_202_ACCEPTED
        items[position] = items[position].model_copy(update={"task": task, "status_code": code})
    if not accepted:
        response.status_code = status.HTTP_202_ACCEPTED
    return BatchSubmitted(items=items, accepted=len(accepted), refused=len(items) - len(accepted))


async def _store(
    services: Services, owner_id: uuid.UUID, valid: list[tuple[int, NewInput]], idempotency_key: str | None, callback_url: str | None
) -> list[Task | Exception]:
    """One task per valid upload, or the reason it was refused (a full queue, a reused key).
    Without an Idempotency-Key all are stored in one transaction; with one, each image with its
    own key `K:i` in a session of its own, so one image's rollback expires no other's task."""
    settings = services.settings
    if idempotency_key is None:
        async with services.sessions() as session:
            outcomes = await queue.enqueue_many(
                session, owner_id=owner_id, uploads=[upload for _, upload in valid], max_attempts=settings.queue.max_attempts,
                bounds=queue.Bounds(per_user=settings.limits.max_queued_per_user, total=settings.limits.max_queued_total),
                callback_url=callback_url,
            )
        for (_, upload), outcome in zip(valid, outcomes):
            if isinstance(outcome, Task):
                record_accepted(services, outcome, owner_id, upload)
        return list(outcomes)
    stored: list[Task | Exception] = []
    for position, upload in valid:
        try:
            async with services.sessions() as own:
                task, _ = await enqueue_upload(services, own, owner_id, upload, f"{idempotency_key}:{position}", callback_url)
            stored.append(task)
        except (queue.QueueFull, queue.IdempotencyConflict) as exc:
            stored.append(exc)
    return stored
