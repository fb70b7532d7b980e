"""What the database says about a set of tasks: nothing lost, nothing doubled, nothing stuck."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select

from db.engine import create_engine, session_factory
from db.models import Primitive, SceneResult, Task


async def integrity(database_url: str, task_ids: list[str]) -> dict:
    ids = [uuid.UUID(t) for t in task_ids]
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            statuses = dict((await session.execute(select(Task.status, func.count()).where(Task.id.in_(ids)).group_by(Task.status))).all())
            attempts = dict((await session.execute(select(Task.attempts, func.count()).where(Task.id.in_(ids)).group_by(Task.attempts))).all())
            with_result = await session.scalar(select(func.count()).select_from(SceneResult).where(SceneResult.task_id.in_(ids)))
            primitives = select(Primitive.task_id, Primitive.ordinal).where(Primitive.task_id.in_(ids))
            rows = await session.scalar(select(func.count()).select_from(primitives.subquery()))
            distinct = await session.scalar(select(func.count()).select_from(primitives.distinct().subquery()))
    finally:
        await engine.dispose()
    found = sum(statuses.values())
    return {
        "accepted": len(ids),
        "in_database": found,
        "lost": len(ids) - found,
        "by_status": statuses,
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "with_result": with_result,
        "duplicated_primitives": rows - distinct,
        "stuck_running": statuses.get("running", 0),
    }


async def status_counts(database_url: str) -> dict[str, int]:
    """How many tasks of the whole service are in each status now."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return dict((await session.execute(select(Task.status, func.count()).group_by(Task.status))).all())
    finally:
        await engine.dispose()


async def finished_since(database_url: str, task_ids: list[str], moment: datetime) -> dict:
    """Of these tasks: how many finished after `moment` (e.g. a fault), how soon the first did,
    and how many took more than one attempt."""
    ids = [uuid.UUID(t) for t in task_ids]
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            later = (Task.id.in_(ids), Task.finished_at > moment)
            count = await session.scalar(select(func.count()).select_from(Task).where(*later))
            first = await session.scalar(select(func.min(Task.finished_at)).where(*later))
            retried = await session.scalar(select(func.count()).select_from(Task).where(Task.id.in_(ids), Task.attempts > 1))
    finally:
        await engine.dispose()
    return {
        "finished_after": count,
        "first_finished_after_s": round((first - moment).total_seconds(), 2) if first else None,
        "needed_another_attempt": retried,
    }
