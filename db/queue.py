"""The durable task queue, kept in the `tasks` table.

Delivery is at-least-once. A dispatcher *claims* queued tasks with a lease (the attempt is
counted at claim time), extends the lease while it works, and *finishes* or *fails* a task only
while it still holds that attempt (fencing): a worker whose lease was rescued, or whose task was
deleted, changes nothing. Expired leases are *rescued* back to `queued` until `max_attempts`.
Every operation is one short transaction; callers pass a fresh session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import case, func, insert, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import QUEUED_SQL, UNFINISHED, UNFINISHED_SQL, Primitive, SceneResult, Task, TaskInput, TaskStatus, WebhookState
from db.types import utcnow

MAX_ERROR_LENGTH = 1000

# The queue's statements name the Core tables, not the ORM classes: an ORM-enabled UPDATE or
# INSERT goes through the ORM's compile and bulk paths even when it loads no object (the bulk
# UPDATE alone was a seventh of the dispatcher's samples under load; docs/levers.md).
TASKS = Task.__table__
INPUTS = TaskInput.__table__
PRIMITIVES = Primitive.__table__
SCENES = SceneResult.__table__


@dataclass(frozen=True)
class NewInput:
    """A validated upload, ready to store."""

    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str


@dataclass(frozen=True)
class Bounds:
    """How many unfinished tasks one user, and the whole service, may have."""

    per_user: int
    total: int


@dataclass(frozen=True)
class Claim:
    """One attempt at a task; the pair (task_id, attempt) is the fencing token."""

    task_id: uuid.UUID
    attempt: int
    # Not part of the fencing token; for logs and metrics.
    owner_id: uuid.UUID | None = field(default=None, compare=False)
    created_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Rescued:
    requeued: int
    failed: int


class QueueFull(Exception):
    def __init__(self, scope: Literal["user", "service"], limit: int) -> None:
        super().__init__(f"{scope} queue is full ({limit} unfinished tasks)")
        self.scope = scope
        self.limit = limit


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used by this user for a different image."""


async def enqueue(
    session: AsyncSession,
    *,
    task_id: uuid.UUID | None = None,
    owner_id: uuid.UUID,
    upload: NewInput,
    max_attempts: int,
    bounds: Bounds,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
) -> tuple[Task, bool]:
    """Store a task and its image in one transaction. Returns (task, created). With a
    `callback_url`, the outcome is POSTed there once the task has finished (`db.webhooks`).

    With an idempotency key already used by this owner, the earlier task comes back instead
    (created=False), provided the image is the same. `task_id` is the new task's id, when the
    caller needs it before the task is stored (to follow its changes); else a new one.
    """
    if idempotency_key is not None:
        existing = await _find_by_idempotency_key(session, owner_id, idempotency_key, upload.sha256)
        if existing is not None:
            return existing, False
    await _check_bounds(session, owner_id, bounds)
    task = new_task(owner_id, max_attempts, task_id=task_id, idempotency_key=idempotency_key, callback_url=callback_url)
    try:
        await _insert(session, [task], [upload])
        await session.commit()
    except IntegrityError:
        # Another request with the same key won the race: answer with its task.
        await session.rollback()
        if idempotency_key is None:
            raise
        existing = await _find_by_idempotency_key(session, owner_id, idempotency_key, upload.sha256)
        if existing is None:
            raise
        return existing, False
    return task, True


async def enqueue_many(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    uploads: list[NewInput],
    max_attempts: int,
    bounds: Bounds,
    callback_url: str | None = None,
) -> list[Task | QueueFull]:
    """Store many tasks of one owner in one transaction (a batch submit without idempotency
    keys): the bounds are counted once, and uploads beyond them get their QueueFull, in order."""
    room_user, room_total = await _room(session, owner_id, bounds)
    outcomes: list[Task | QueueFull] = []
    tasks: list[Task] = []
    for _ in uploads:
        if len(tasks) >= room_user:
            outcomes.append(QueueFull("user", bounds.per_user))
        elif len(tasks) >= room_total:
            outcomes.append(QueueFull("service", bounds.total))
        else:
            task = new_task(owner_id, max_attempts, callback_url=callback_url)
            tasks.append(task)
            outcomes.append(task)
    if tasks:
        await _insert(session, tasks, [upload for upload, outcome in zip(uploads, outcomes) if isinstance(outcome, Task)])
        await session.commit()
    return outcomes


def new_task(
    owner_id: uuid.UUID, max_attempts: int, *, task_id: uuid.UUID | None = None, idempotency_key: str | None = None,
    callback_url: str | None = None,
) -> Task:
    """A queued task, not yet stored; with a `callback_url`, its webhook is pending."""
    task = Task(id=task_id or uuid.uuid4(), owner_id=owner_id, max_attempts=max_attempts, idempotency_key=idempotency_key)
    if callback_url is not None:
        task.callback_url, task.webhook_state, task.webhook_next_at = callback_url, WebhookState.pending.value, task.created_at
    return task


TASK_COLUMNS = tuple(column.key for column in TASKS.columns)
INPUT_COLUMNS = tuple(column.key for column in INPUTS.columns)


def task_row(task: Task) -> dict[str, object]:
    return {key: getattr(task, key) for key in TASK_COLUMNS}


def input_row(task: Task, upload: NewInput) -> dict[str, object]:
    return {
        "task_id": task.id, "content_type": upload.content_type, "size_bytes": len(upload.data),
        "width": upload.width, "height": upload.height, "sha256": upload.sha256, "data": upload.data,
    }


async def _insert(session: AsyncSession, tasks: list[Task], uploads: list[NewInput]) -> None:
    """The tasks' rows, then their images' (whose foreign key needs the tasks first), as plain
    INSERTs: the ORM's unit of work cost as much CPU per submit as both statements. The Task
    objects stay transient; callers only read them."""
    await session.execute(insert(TASKS), [task_row(task) for task in tasks])
    await session.execute(insert(INPUTS), [input_row(task, upload) for task, upload in zip(tasks, uploads, strict=True)])


async def _find_by_idempotency_key(session: AsyncSession, owner_id: uuid.UUID, key: str, sha256: str) -> Task | None:
    row = (
        await session.execute(
            select(Task, TaskInput.sha256)
            .join(TaskInput, TaskInput.task_id == Task.id)
            .where(Task.owner_id == owner_id, Task.idempotency_key == key)
        )
    ).first()
    if row is None:
        return None
    task, stored_sha256 = row
    if stored_sha256 != sha256:
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was already used for a different image")
    return task


async def _unfinished_counts(session: AsyncSession, owner_id: uuid.UUID) -> tuple[int, int]:
    """The unfinished tasks of the owner and of the whole service, both in one round trip."""
    mine, everyone = (
        await session.execute(
            # The status as literal SQL, the partial index's own predicate: a prepared statement's
            # generic plan could not prove a bound parameter matches it, and would not use the index.
            select(func.count().filter(TASKS.c.owner_id == owner_id), func.count()).select_from(TASKS).where(text(UNFINISHED_SQL))
        )
    ).one()
    return mine, everyone


async def _room(session: AsyncSession, owner_id: uuid.UUID, bounds: Bounds) -> tuple[int, int]:
    """How many more unfinished tasks the owner, and the whole service, may have."""
    mine, everyone = await _unfinished_counts(session, owner_id)
    return bounds.per_user - mine, bounds.total - everyone


async def _check_bounds(session: AsyncSession, owner_id: uuid.UUID, bounds: Bounds) -> None:
    mine, everyone = await _unfinished_counts(session, owner_id)
    refuse_when_full(bounds, mine, everyone)


def refuse_when_full(bounds: Bounds, mine: int, everyone: int) -> None:
    """Raise QueueFull when the owner (`mine` unfinished tasks) or the service (`everyone`) is at its bound."""
    if mine >= bounds.per_user:
        raise QueueFull("user", bounds.per_user)
    if everyone >= bounds.total:
        raise QueueFull("service", bounds.total)


async def claim(session: AsyncSession, *, worker_id: str, limit: int, lease_s: float) -> list[Claim]:
    """Lease up to `limit` queued tasks, oldest first, counting one more attempt for each.

    PostgreSQL: concurrent claimers skip each other's locked rows (`FOR UPDATE SKIP LOCKED`);
    the candidate CTE is MATERIALIZED so the planner cannot re-run it and claim more than
    `limit`. SQLite ignores the locking clause; its single writer lock makes the one UPDATE
    statement atomic, which gives the same guarantee.
    """
    if limit <= 0:
        return []
    now = utcnow()
    candidates = (
        select(TASKS.c.id)
        .where(text(QUEUED_SQL), TASKS.c.run_after <= now)  # literal, as in _room: the partial index's predicate
        .order_by(TASKS.c.created_at, TASKS.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("candidates")
        .prefix_with("MATERIALIZED")
    )
    rows = await session.execute(
        update(TASKS)
        .where(TASKS.c.id.in_(select(candidates.c.id)))
        .values(
            status=TaskStatus.running.value,
            attempts=TASKS.c.attempts + 1,
            worker_id=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_s),
            started_at=func.coalesce(TASKS.c.started_at, now),
        )
        .returning(TASKS.c.id, TASKS.c.attempts, TASKS.c.owner_id, TASKS.c.created_at)
    )
    claims = [Claim(task_id=task_id, attempt=attempt, owner_id=owner, created_at=created) for task_id, attempt, owner, created in rows.all()]
    await session.commit()
    return claims


def _held(claim: Claim) -> tuple:
    """WHERE clause of every fenced write: the task is still running this very attempt."""
    return (TASKS.c.id == claim.task_id, TASKS.c.status == TaskStatus.running.value, TASKS.c.attempts == claim.attempt)


def _all_held(claims: list[Claim]) -> tuple:
    """The same fence for many claims at once, for one statement over a whole batch. One
    expanding IN of (id, attempt) pairs: the statement is the same whatever the batch's size,
    so SQLAlchemy compiles it once."""
    return (
        TASKS.c.status == TaskStatus.running.value,
        tuple_(TASKS.c.id, TASKS.c.attempts).in_([(claim.task_id, claim.attempt) for claim in claims]),
    )


async def _fenced_update(session: AsyncSession, claim: Claim, **values: object) -> bool:
    result = await session.execute(update(TASKS).where(*_held(claim)).values(**values).returning(TASKS.c.id))
    return result.first() is not None


async def heartbeat(session: AsyncSession, claim: Claim, *, lease_s: float) -> bool:
    """Extend the lease. False means the attempt is no longer ours (rescued, finished or deleted)."""
    held = await _fenced_update(session, claim, lease_expires_at=utcnow() + timedelta(seconds=lease_s))
    await session.commit()
    return held


async def heartbeat_many(session: AsyncSession, claims: list[Claim], *, lease_s: float) -> set[uuid.UUID]:
    """Extend the leases of many attempts in one statement; returns the ids still held (an
    attempt missing from it was rescued, finished or deleted)."""
    if not claims:
        return set()
    result = await session.execute(
        update(TASKS).where(*_all_held(claims)).values(lease_expires_at=utcnow() + timedelta(seconds=lease_s)).returning(TASKS.c.id)
    )
    held = set(result.scalars().all())
    await session.commit()
    return held


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: primitives (column values, without task id and ordinal) and
    the scene row's values."""

    claim: Claim
    primitives: list[dict]
    scene: dict


async def finish_many(session: AsyncSession, outcomes: list[Outcome]) -> set[uuid.UUID]:
    """Mark many tasks succeeded and store their results in one transaction, each only if its
    attempt still holds; returns the ids stored. Three statements for the whole batch: the
    fenced status change, then the primitives and scenes of the tasks it changed."""
    if not outcomes:
        return set()
    now = utcnow()
    result = await session.execute(
        update(TASKS)
        .where(*_all_held([o.claim for o in outcomes]))
        .values(status=TaskStatus.succeeded.value, finished_at=now, lease_expires_at=None, worker_id=None, error=None)
        .returning(TASKS.c.id)
    )
    stored = set(result.scalars().all())
    kept = [o for o in outcomes if o.claim.task_id in stored]
    primitives = [
        {**values, "task_id": o.claim.task_id, "ordinal": ordinal} for o in kept for ordinal, values in enumerate(o.primitives)
    ]
    if primitives:
        await session.execute(insert(PRIMITIVES), primitives)
    if kept:
        await session.execute(insert(SCENES), [{**o.scene, "task_id": o.claim.task_id} for o in kept])
    await session.commit()
    return stored


async def finish(session: AsyncSession, claim: Claim, *, primitives: list[Primitive], scene: SceneResult) -> bool:
    """Mark the task succeeded and store its result, only if the attempt still holds.

    The status change and the result rows share one transaction, so a task has a result exactly
    when it is `succeeded`, and a duplicate or late finish writes nothing.
    """
    done = await _fenced_update(
        session,
        claim,
        status=TaskStatus.succeeded.value,
        finished_at=utcnow(),
        lease_expires_at=None,
        worker_id=None,
        error=None,
    )
    if not done:
        await session.rollback()
        return False
    for ordinal, primitive in enumerate(primitives):
        primitive.task_id, primitive.ordinal = claim.task_id, ordinal
    scene.task_id = claim.task_id
    session.add_all([*primitives, scene])
    await session.commit()
    return True


async def fail(
    session: AsyncSession, claim: Claim, *, error: str, retryable: bool, backoff_s: float
) -> TaskStatus | None:
    """Record a failed attempt. A retryable failure goes back to the queue after a backoff that
    doubles per attempt, until `max_attempts`; a permanent one fails at once.
    Returns the new status, or None when the attempt no longer held."""
    now = utcnow()
    out_of_attempts = TASKS.c.attempts >= TASKS.c.max_attempts
    give_up = out_of_attempts if retryable else True
    delay = timedelta(seconds=backoff_s * 2 ** (claim.attempt - 1))
    result = await session.execute(
        update(TASKS)
        .where(*_held(claim))
        .values(
            status=case((give_up, TaskStatus.failed.value), else_=TaskStatus.queued.value),
            finished_at=case((give_up, now), else_=None),
            run_after=now + delay,
            error=error[:MAX_ERROR_LENGTH],
            lease_expires_at=None,
            worker_id=None,
        )
        .returning(TASKS.c.status)
    )
    status = result.scalar_one_or_none()
    await session.commit()
    return TaskStatus(status) if status is not None else None


async def rescue_expired(session: AsyncSession, *, now: datetime | None = None) -> Rescued:
    """Put running tasks whose lease expired (their worker died) back in the queue, or fail
    them when they have used all their attempts."""
    now = now or utcnow()
    exhausted = TASKS.c.attempts >= TASKS.c.max_attempts
    result = await session.execute(
        update(TASKS)
        .where(TASKS.c.status == TaskStatus.running.value, TASKS.c.lease_expires_at < now)
        .values(
            status=case((exhausted, TaskStatus.failed.value), else_=TaskStatus.queued.value),
            error=case(
                (exhausted, "worker lost: the lease expired on the last allowed attempt"),
                else_="worker lost: the lease expired; the task was queued again",
            ),
            finished_at=case((exhausted, now), else_=None),
            run_after=now,
            lease_expires_at=None,
            worker_id=None,
        )
        .returning(TASKS.c.id, TASKS.c.status)
    )
    rows = result.all()
    statuses = [status for _, status in rows]
    await session.commit()
    failed = statuses.count(TaskStatus.failed.value)
    return Rescued(requeued=len(statuses) - failed, failed=failed)


@dataclass(frozen=True)
class StoredImage:
    """What the models need of a task's stored upload."""

    data: bytes
    content_type: str
    width: int
    height: int


async def load_inputs(session: AsyncSession, task_ids: list[uuid.UUID]) -> dict[uuid.UUID, StoredImage]:
    """The stored images of these tasks, in one query (a task deleted meanwhile is missing)."""
    if not task_ids:
        return {}
    rows = await session.execute(
        select(INPUTS.c.task_id, INPUTS.c.data, INPUTS.c.content_type, INPUTS.c.width, INPUTS.c.height).where(INPUTS.c.task_id.in_(task_ids))
    )
    return {task_id: StoredImage(data, content_type, width, height) for task_id, data, content_type, width, height in rows}


async def unfinished_counts(session: AsyncSession) -> dict[str, int]:
    """How many tasks of the whole service are queued and running."""
    rows = await session.execute(select(TASKS.c.status, func.count()).where(TASKS.c.status.in_(UNFINISHED)).group_by(TASKS.c.status))
    return {status: count for status, count in rows.all()}
