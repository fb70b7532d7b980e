"""Queue semantics on both backends: claim, lease, heartbeat, fencing, retries, rescue.

Leases are expired by ageing them in SQL, never by sleeping.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from db import queue
from db.models import Task, TaskInput, TaskStatus
from tests.support.queue import BOUNDS, a_result, age_leases, enqueue_many, get_task, make_due, make_user, result_rows


async def _claim(sessions, worker: str = "w1", limit: int = 10, lease_s: float = 60) -> list[queue.Claim]:
    async with sessions() as session:
        return await queue.claim(session, worker_id=worker, limit=limit, lease_s=lease_s)


async def _rescue(sessions) -> queue.Rescued:
    async with sessions() as session:
        return await queue.rescue_expired(session)


async def test_enqueue_stores_task_and_image_together(sessions) -> None:
    owner = await make_user(sessions)
    [task_id] = await enqueue_many(sessions, owner, 1)
    task = await get_task(sessions, task_id)
    assert (task.status, task.attempts, task.owner_id) == ("queued", 0, owner)
    async with sessions() as session:
        stored = await session.get(TaskInput, task_id)
    assert stored.data == b"image 0" and stored.content_type == "image/png"


async def test_failed_enqueue_leaves_nothing_behind(sessions) -> None:
    data = b"orphan"
    upload = queue.NewInput(data=data, content_type="image/png", width=1, height=1, sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(IntegrityError):
        async with sessions() as session:  # no such user: the foreign key refuses the task
            await queue.enqueue(session, owner_id=uuid.uuid4(), upload=upload, max_attempts=3, bounds=BOUNDS)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Task)) == 0
        assert await session.scalar(select(func.count()).select_from(TaskInput)) == 0


async def test_claim_takes_oldest_first_counts_the_attempt_and_respects_limit(sessions) -> None:
    owner = await make_user(sessions)
    ids = await enqueue_many(sessions, owner, 5)
    first = await _claim(sessions, limit=2)
    assert {c.task_id for c in first} == set(ids[:2])
    assert all(c.attempt == 1 for c in first)
    task = await get_task(sessions, ids[0])
    assert task.status == "running" and task.worker_id == "w1" and task.lease_expires_at is not None
    rest = await _claim(sessions, limit=10)
    assert {c.task_id for c in rest} == set(ids[2:])
    assert await _claim(sessions) == []


async def test_finish_is_fenced_and_idempotent(sessions) -> None:
    owner = await make_user(sessions)
    [task_id] = await enqueue_many(sessions, owner, 1)
    [claim] = await _claim(sessions)
    async with sessions() as session:
        assert await queue.finish(session, claim, primitives=a_result()[0], scene=a_result()[1])
    async with sessions() as session:  # a duplicate delivery of the same result
        assert not await queue.finish(session, claim, primitives=a_result()[0], scene=a_result("car")[1])
    task = await get_task(sessions, task_id)
    assert task.status == "succeeded" and task.finished_at is not None and task.lease_expires_at is None
    assert await result_rows(sessions, task_id) == (2, 1)


async def test_late_finish_after_rescue_is_ignored(sessions) -> None:
    owner = await make_user(sessions)
    [task_id] = await enqueue_many(sessions, owner, 1)
    [stale] = await _claim(sessions, worker="slow")
    await age_leases(sessions)
    assert await _rescue(sessions) == queue.Rescued(requeued=1, failed=0)
    [fresh] = await _claim(sessions, worker="fast")
    assert (fresh.task_id, fresh.attempt) == (task_id, 2)

    async with sessions() as session:  # the first worker wakes up and reports
        assert not await queue.finish(session, stale, primitives=a_result()[0], scene=a_result("stale")[1])
    async with sessions() as session:
        assert not await queue.heartbeat(session, stale, lease_s=60)
    assert await result_rows(sessions, task_id) == (0, 0)
    assert (await get_task(sessions, task_id)).status == "running"

    async with sessions() as session:
        assert await queue.finish(session, fresh, primitives=a_result()[0][:1], scene=a_result("fresh")[1])
    assert await result_rows(sessions, task_id) == (1, 1)


async def test_heartbeat_keeps_a_lease_alive(sessions) -> None:
    owner = await make_user(sessions)
    await enqueue_many(sessions, owner, 1)
    [claim] = await _claim(sessions, lease_s=60)
    await age_leases(sessions, by_s=1)
    async with sessions() as session:
        assert await queue.heartbeat(session, claim, lease_s=60)
    assert await _rescue(sessions) == queue.Rescued(requeued=0, failed=0)


async def test_expired_leases_are_retried_until_max_attempts_then_failed(sessions) -> None:
    owner = await make_user(sessions)
    [task_id] = await enqueue_many(sessions, owner, 1, max_attempts=2)
    for attempt in (1, 2):
        [claim] = await _claim(sessions)
        assert claim.attempt == attempt
        await age_leases(sessions)
        rescued = await _rescue(sessions)
        assert rescued == (queue.Rescued(1, 0) if attempt == 1 else queue.Rescued(0, 1))
    task = await get_task(sessions, task_id)
    assert task.status == "failed" and task.attempts == 2
    assert "lease expired" in task.error and task.finished_at is not None
    assert await _claim(sessions) == []


async def test_retryable_failure_backs_off_then_runs_again(sessions) -> None:
    owner = await make_user(sessions)
    [task_id] = await enqueue_many(sessions, owner, 1, max_attempts=2)
    [claim] = await _claim(sessions)
    async with sessions() as session:
        status = await queue.fail(session, claim, error="model timed out", retryable=True, backoff_s=60)
    assert status is TaskStatus.queued
    assert await _claim(sessions) == []  # still backing off
    await make_due(sessions)
    [again] = await _claim(sessions)
    assert again.attempt == 2
    async with sessions() as session:
        assert await queue.fail(session, again, error="model timed out", retryable=True, backoff_s=60) is TaskStatus.failed
    task = await get_task(sessions, task_id)
    assert task.status == "failed" and task.error == "model timed out"


async def test_permanent_failure_fails_at_once(sessions) -> None:
    owner = await make_user(sessions)
    [task_id] = await enqueue_many(sessions, owner, 1, max_attempts=5)
    [claim] = await _claim(sessions)
    async with sessions() as session:
        assert await queue.fail(session, claim, error="not a picture", retryable=False, backoff_s=1) is TaskStatus.failed
    async with sessions() as session:  # a second report of the same attempt changes nothing
        assert await queue.fail(session, claim, error="again", retryable=True, backoff_s=1) is None
    task = await get_task(sessions, task_id)
    assert (task.status, task.attempts, task.error) == ("failed", 1, "not a picture")


async def test_deleted_task_discards_its_late_result(sessions) -> None:
    from db import tasks

    owner = await make_user(sessions)
    [task_id] = await enqueue_many(sessions, owner, 1)
    [claim] = await _claim(sessions)
    async with sessions() as session:
        assert await tasks.delete_owned(session, task_id, owner)
    async with sessions() as session:
        assert not await queue.heartbeat(session, claim, lease_s=60)
    async with sessions() as session:
        assert not await queue.finish(session, claim, primitives=a_result()[0], scene=a_result()[1])
    assert await result_rows(sessions, task_id) == (0, 0)
    async with sessions() as session:
        assert await session.get(TaskInput, task_id) is None
