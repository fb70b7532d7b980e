"""A succeeded task's result as the API shows it (the result route, the picture, webhooks)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from db import tasks
from db.models import Task, TaskStatus
from deployments.contract import ClassScore, ModelVersions, Primitive, Scene
from serve_app.schemas import ImageSize, TaskPublic, TaskResult


async def task_result(session: AsyncSession, task: Task) -> TaskResult | None:
    """The result of a succeeded task; None if it has none (not succeeded, or just deleted)."""
    if task.status != TaskStatus.succeeded.value:
        return None
    stored = await tasks.get_result(session, task.id)
    return None if stored is None else _public(task.id, stored)


ResultReader = Callable[[list[uuid.UUID]], Awaitable[dict[uuid.UUID, tasks.StoredResult]]]


async def task_results(read: ResultReader, found: list[TaskPublic]) -> dict[uuid.UUID, TaskResult]:
    """The results of those of these tasks that succeeded, read together by `read`
    (`db.tasks.get_results` in a session, or `db.direct.DirectStatements.results`)."""
    succeeded = [task.id for task in found if task.status == TaskStatus.succeeded]
    stored = await read(succeeded)
    return {task_id: _public(task_id, result) for task_id, result in stored.items()}


def _public(task_id: uuid.UUID, stored: tasks.StoredResult) -> TaskResult:
    scene = stored.scene
    return TaskResult(
        task_id=task_id,
        status=TaskStatus.succeeded,
        image=ImageSize(width=stored.width, height=stored.height),
        primitives=[Primitive.model_validate(p, from_attributes=True) for p in stored.primitives],
        scene=Scene(
            class_id=scene.class_id,
            class_name=scene.class_name,
            confidence=scene.confidence,
            top_k=[ClassScore.model_validate(s) for s in scene.top_k],
        ),
        models=ModelVersions(detector=scene.detector_model, classifier=scene.classifier_model),
    )
