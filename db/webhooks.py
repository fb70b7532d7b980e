"""Webhook bookkeeping: which finished tasks have an outcome to deliver, and each attempt.

A task with a `callback_url` starts `pending`. Once it has finished, a sender claims it (the
claim pushes `webhook_next_at` forward by a lease, so two senders do not post it at once), and
records the attempt: `delivered`, `retrying` with the next time, or `failed` after the last one.
Delivery is at least once: a sender that dies after posting leaves the task to be posted again."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import FINISHED, WEBHOOK_DUE, Task, User, WebhookDelivery, WebhookState
from db.types import utcnow


async def claim_due(session: AsyncSession, *, limit: int, lease: timedelta, now: datetime | None = None) -> list[Task]:
    """Finished tasks whose webhook is due, leased to the caller for `lease`."""
    now = now or utcnow()
    due = (
        select(Task.id)
        .where(Task.webhook_state.in_(WEBHOOK_DUE), Task.webhook_next_at <= now, Task.status.in_(FINISHED))
        .order_by(Task.webhook_next_at)
        .limit(limit)
    )
    if session.bind.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed = await session.scalars(
        update(Task).where(Task.id.in_(due.scalar_subquery())).values(webhook_next_at=now + lease).returning(Task)
    )
    tasks = list(claimed)
    await session.commit()
    return tasks


async def attempts(session: AsyncSession, task_id: uuid.UUID) -> list[WebhookDelivery]:
    return list(await session.scalars(select(WebhookDelivery).where(WebhookDelivery.task_id == task_id).order_by(WebhookDelivery.attempt)))


async def record(
    session: AsyncSession, task_id: uuid.UUID, *, status_code: int | None, error: str | None, retry_at: datetime | None
) -> WebhookDelivery:
    """Store one attempt and move the task on: delivered (a 2xx), retrying at `retry_at`, or
    failed for good (`retry_at` None). A task deleted meanwhile is left alone."""
    number = len(await attempts(session, task_id)) + 1
    delivered = status_code is not None and 200 <= status_code < 300
    attempt = WebhookDelivery(task_id=task_id, attempt=number, status_code=status_code, error=error, delivered=delivered)
    state = WebhookState.delivered if delivered else WebhookState.retrying if retry_at is not None else WebhookState.failed
    result = await session.execute(
        update(Task).where(Task.id == task_id).values(webhook_state=state.value, webhook_next_at=retry_at if state is WebhookState.retrying else None)
    )
    if result.rowcount:
        session.add(attempt)
    await session.commit()
    return attempt


async def secret_for(session: AsyncSession, user: User, *, rotate: bool = False) -> str:
    """The user's signing key, made on first use (or anew with `rotate`)."""
    if user.webhook_secret is None or rotate:
        user.webhook_secret = secrets.token_hex(32)
        session.add(user)
        await session.commit()
    return user.webhook_secret
