"""Direct queue helpers: users and tasks made in the database, leases aged in SQL."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from sqlalchemy import select, update

from db import queue
from db.engine import SessionFactory
from db.models import Primitive, SceneResult, Task, User
from db.types import utcnow

BOUNDS = queue.Bounds(per_user=100_000, total=100_000)


async def make_user(sessions: SessionFactory, username: str = "queue-user") -> uuid.UUID:
    async with sessions() as session:
        user = User(username=username, hashed_password="not used here")
        session.add(user)
        await session.commit()
        return user.id


async def enqueue_many(sessions: SessionFactory, owner_id: uuid.UUID, count: int, max_attempts: int = 3) -> list[uuid.UUID]:
    ids = []
    for i in range(count):
        data = f"image {i}".encode()
        upload = queue.NewInput(data=data, content_type="image/png", width=1, height=1, sha256=hashlib.sha256(data).hexdigest())
        async with sessions() as session:
            task, _ = await queue.enqueue(session, owner_id=owner_id, upload=upload, max_attempts=max_attempts, bounds=BOUNDS)
        ids.append(task.id)
    return ids


async def age_leases(sessions: SessionFactory, task_ids: list[uuid.UUID] | None = None, by_s: float = 3600) -> None:
    """Make leases look expired, as if their worker died long ago (no sleeping)."""
    stmt = update(Task).where(Task.status == "running").values(lease_expires_at=utcnow() - timedelta(seconds=by_s))
    if task_ids is not None:
        stmt = stmt.where(Task.id.in_(task_ids))
    async with sessions() as session:
        await session.execute(stmt)
        await session.commit()


async def make_due(sessions: SessionFactory) -> None:
    """Skip retry backoffs."""
    async with sessions() as session:
        await session.execute(update(Task).where(Task.status == "queued").values(run_after=utcnow() - timedelta(seconds=1)))
        await session.commit()


async def get_task(sessions: SessionFactory, task_id: uuid.UUID) -> Task:
    async with sessions() as session:
        task = await session.get(Task, task_id)
        assert task is not None
        return task


async def result_rows(sessions: SessionFactory, task_id: uuid.UUID) -> tuple[int, int]:
    async with sessions() as session:
        primitives = len((await session.scalars(select(Primitive).where(Primitive.task_id == task_id))).all())
        scenes = len((await session.scalars(select(SceneResult).where(SceneResult.task_id == task_id))).all())
    return primitives, scenes


def a_result(label: str = "house") -> tuple[list[Primitive], SceneResult]:
    primitives = [
        Primitive(class_id=0, class_name="circle", x=0.5, y=0.5, width=0.1, height=0.1, rotation=0.0, confidence=0.9),
        Primitive(class_id=2, class_name="triangle", x=0.2, y=0.3, width=0.2, height=0.1, rotation=0.5, confidence=0.8),
    ]
    scene = SceneResult(
        class_id=0, class_name=label, confidence=0.9, top_k=[{"class_name": label, "confidence": 0.9}],
        detector_model="d:1", classifier_model="c:1",
    )
    return primitives, scene
