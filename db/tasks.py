"""Reading and deleting tasks on behalf of their owner.

Ownership is part of every query: a task that belongs to someone else is simply not found,
exactly like one that does not exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Primitive, SceneResult, Task, TaskInput


@dataclass(frozen=True)
class PageKey:
    """Position in a newest-first listing: the last task of the previous page."""

    created_at: datetime
    task_id: uuid.UUID


@dataclass(frozen=True)
class Page:
    tasks: list[Task]
    total: int
    next_key: PageKey | None


async def get_owned(session: AsyncSession, task_id: uuid.UUID, owner_id: uuid.UUID) -> Task | None:
    return await session.scalar(select(Task).where(Task.id == task_id, Task.owner_id == owner_id))


async def get_many_owned(session: AsyncSession, task_ids: list[uuid.UUID], owner_id: uuid.UUID) -> dict[uuid.UUID, Task]:
    """Those of these tasks that exist and belong to `owner_id`, in one query."""
    if not task_ids:
        return {}
    rows = await session.scalars(select(Task).where(Task.id.in_(task_ids), Task.owner_id == owner_id))
    return {task.id: task for task in rows}


async def list_owned(
    session: AsyncSession, owner_id: uuid.UUID, *, status: str | None, limit: int, after: PageKey | None
) -> Page:
    filters = [Task.owner_id == owner_id]
    if status is not None:
        filters.append(Task.status == status)
    total = await session.scalar(select(func.count()).select_from(Task).where(*filters)) or 0
    query = select(Task).where(*filters)
    if after is not None:
        query = query.where(tuple_(Task.created_at, Task.id) < tuple_(after.created_at, after.task_id))
    # One row more than asked tells whether another page follows.
    rows = list(await session.scalars(query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit + 1)))
    tasks = rows[:limit]
    next_key = PageKey(tasks[-1].created_at, tasks[-1].id) if len(rows) > limit else None
    return Page(tasks=tasks, total=total, next_key=next_key)


async def get_input(session: AsyncSession, task_id: uuid.UUID, owner_id: uuid.UUID) -> TaskInput | None:
    return await session.scalar(
        select(TaskInput).join(Task, Task.id == TaskInput.task_id).where(Task.id == task_id, Task.owner_id == owner_id)
    )


@dataclass(frozen=True)
class StoredResult:
    width: int
    height: int
    primitives: list[Primitive]
    scene: SceneResult


async def get_result(session: AsyncSession, task_id: uuid.UUID) -> StoredResult | None:
    """A finished task's result with its image size (not the image itself); None if it has none."""
    row = (
        await session.execute(
            select(SceneResult, TaskInput.width, TaskInput.height)
            .join(TaskInput, TaskInput.task_id == SceneResult.task_id)
            .where(SceneResult.task_id == task_id)
        )
    ).first()
    if row is None:
        return None
    scene, width, height = row
    primitives = await session.scalars(select(Primitive).where(Primitive.task_id == task_id).order_by(Primitive.ordinal))
    return StoredResult(width=width, height=height, primitives=list(primitives), scene=scene)


async def get_results(session: AsyncSession, task_ids: list[uuid.UUID]) -> dict[uuid.UUID, StoredResult]:
    """The results of those of these tasks that have one, in two queries whatever their number.

    The primitives are read before the scenes, so the two reads need no transaction around them
    (`db.engine.read_session_factory`): a result is stored whole and deleted whole, so a scene
    still there means that every one of its primitives was there for the read before."""
    if not task_ids:
        return {}
    found: dict[uuid.UUID, list[Primitive]] = {task_id: [] for task_id in task_ids}
    for primitive in await session.scalars(
        select(Primitive).where(Primitive.task_id.in_(task_ids)).order_by(Primitive.task_id, Primitive.ordinal)
    ):
        found[primitive.task_id].append(primitive)
    rows = (
        await session.execute(
            select(SceneResult, TaskInput.width, TaskInput.height)
            .join(TaskInput, TaskInput.task_id == SceneResult.task_id)
            .where(SceneResult.task_id.in_(task_ids))
        )
    ).all()
    return {
        scene.task_id: StoredResult(width=width, height=height, primitives=found[scene.task_id], scene=scene)
        for scene, width, height in rows
    }


async def delete_owned(session: AsyncSession, task_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
    """Delete a task with its input and results (foreign keys cascade). A worker still running
    it will find its attempt gone and its late result is discarded."""
    result = await session.execute(
        delete(Task).where(Task.id == task_id, Task.owner_id == owner_id).returning(Task.id)
    )
    deleted = result.first() is not None
    await session.commit()
    return deleted


async def existing_owned(session: AsyncSession, owner_id: uuid.UUID, task_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these tasks still exist and belong to `owner_id`."""
    if not task_ids:
        return set()
    return set(await session.scalars(select(Task.id).where(Task.owner_id == owner_id, Task.id.in_(task_ids))))
