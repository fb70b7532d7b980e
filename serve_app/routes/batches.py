"""Batch submit: several images in one request, one task each (`POST /api/v1/batches`).

Not `/tasks/batch`: that path would also be `/tasks/{task_id}`, so a wrong method there would be
answered as a bad task id instead of 405 (the same reason the user's event stream is `/events`).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from db import queue
from db.models import Task, TaskStatus
from serve_app.deps import CurrentUser, ServicesDep, SessionDep
from serve_app.errors import error_responses, refusal
from serve_app.routes.tasks import CallbackUrl, IdempotencyKey, PreferHeader, answer_submit, check_callback, enqueue_upload
from serve_app.routes.uploads import IMAGES_PART_OPENAPI, ImagesField, part_problem, read_upload
from serve_app.schemas import BatchItem, BatchSubmitted
from serve_app.uploads import UploadRejected

router = APIRouter(prefix="/batches", tags=["tasks"])
BATCH_PATH = router.prefix  # under the API prefix; the body-size limit names it too


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchSubmitted,
    responses={
        200: {"model": BatchSubmitted, "description": "Every accepted task finished while the request waited (`Prefer: wait`)."},
        **error_responses(400, 401, 413, 422, 503),
    },
    openapi_extra=IMAGES_PART_OPENAPI,
)
async def create_tasks(
    images: ImagesField, user: CurrentUser, services: ServicesDep, session: SessionDep, response: Response,
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
    # End the caller's lookup transaction: each image is stored in a session of its own, and a
    # request that waits for its tasks must not hold a database connection meanwhile.
    await session.commit()
    limits = services.settings.limits
    if len(images) > limits.max_batch_images:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"A batch may have at most {limits.max_batch_images} images; this one has {len(images)}. Send fewer per request.",
        )
    check_callback(callback_url, services)
    items: list[BatchItem] = []
    accepted: list[tuple[int, Task]] = []
    for index, image in enumerate(images):
        key = f"{idempotency_key}:{index}" if idempotency_key is not None else None
        if (problem := part_problem(image)) is not None:
            items.append(BatchItem(index=index, filename=None, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=problem))
            continue
        assert not isinstance(image, str)
        try:
            upload = await read_upload(image, limits)
            async with services.sessions() as own:  # its own session: one image's rollback expires no other's task
                task, _ = await enqueue_upload(services, own, owner_id, upload, key, callback_url)
        except (UploadRejected, queue.QueueFull, queue.IdempotencyConflict) as exc:
            status_code, detail = refusal(exc) or (status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))
            items.append(BatchItem(index=index, filename=image.filename, status_code=status_code, detail=detail))
            continue
        accepted.append((len(items), task))
        items.append(BatchItem(index=index, filename=image.filename, status_code=status.HTTP_202_ACCEPTED))
    answered = await answer_submit(services, owner_id, [task for _, task in accepted], prefer, response)
    for (position, _), task in zip(accepted, answered):
        code = status.HTTP_200_OK if TaskStatus(task.status).finished else status.HTTP_202_ACCEPTED
        items[position] = items[position].model_copy(update={"task": task, "status_code": code})
    if not accepted:
        response.status_code = status.HTTP_202_ACCEPTED
    return BatchSubmitted(items=items, accepted=len(accepted), refused=len(items) - len(accepted))
