"""Deleting finished tasks once they are older than the retention period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import FINISHED, Task


async def delete_finished_before(session: AsyncSession, cutoff: datetime, *, batch: int = 500) -> int:
    """Delete tasks that finished before `cutoff`, with their inputs and results (foreign keys
    cascade). Works in batches, each its own transaction, so no lock is held for long."""
    deleted = 0
    while True:
        expired = select(Task.id).where(Task.status.in_(FINISHED), Task.finished_at < cutoff).limit(batch)
        result = await session.execute(delete(Task).where(Task.id.in_(expired.scalar_subquery())))
        await session.commit()
        deleted += result.rowcount
        if result.rowcount < batch:
            return deleted
