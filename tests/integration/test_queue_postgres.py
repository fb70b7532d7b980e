"""PostgreSQL-only queue behaviour: many claimers at once, and locked rows skipped, not waited on."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from sqlalchemy import select, text

from db import queue
from db.engine import create_engine, session_factory
from db.models import Task
from tests.support.queue import age_leases, enqueue_many, make_user

pytestmark = pytest.mark.parametrize("backend_url", ["postgresql"], indirect=True)

TASKS = 200
CLAIMERS = 8


async def _claim_everything(sessions, round_name: str) -> tuple[list[queue.Claim], float]:
    """CLAIMERS workers, each on its own connection, claim small batches until the queue is empty."""

    async def worker(n: int) -> list[queue.Claim]:
        mine: list[queue.Claim] = []
        while True:
            async with sessions() as session:
                batch = await queue.claim(session, worker_id=f"{round_name}-{n}", limit=3, lease_s=60)
            if not batch:
                return mine
            mine += batch

    started = time.perf_counter()
    per_worker = await asyncio.gather(*(worker(n) for n in range(CLAIMERS)))
    elapsed = time.perf_counter() - started
    busy = sum(1 for claims in per_worker if claims)
    print(f"\n{round_name}: {TASKS} tasks claimed by {CLAIMERS} concurrent claimers ({busy} got work) in {elapsed * 1000:.0f} ms")
    return [c for claims in per_worker for c in claims], elapsed


async def test_concurrent_claimers_take_every_task_exactly_once_per_attempt(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=CLAIMERS + 2)
    sessions = session_factory(engine)
    try:
        owner = await make_user(sessions)
        ids = set(await enqueue_many(sessions, owner, TASKS))

        first, _ = await _claim_everything(sessions, "attempt 1")
        counts = Counter(c.task_id for c in first)
        assert set(counts) == ids  # none lost
        assert max(counts.values()) == 1  # none claimed twice
        assert {c.attempt for c in first} == {1}

        # Every worker dies: after the leases expire, each task is claimed once more, as attempt 2.
        await age_leases(sessions)
        async with sessions() as session:
            assert await queue.rescue_expired(session) == queue.Rescued(requeued=TASKS, failed=0)
        second, _ = await _claim_everything(sessions, "attempt 2")
        assert Counter(c.task_id for c in second) == Counter(ids)
        assert {c.attempt for c in second} == {2}
        async with sessions() as session:
            assert set(await session.scalars(select(Task.status))) == {"running"}
    finally:
        await engine.dispose()


async def test_claim_skips_rows_locked_by_another_transaction(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        owner = await make_user(sessions)
        ids = await enqueue_many(sessions, owner, 3)
        async with engine.connect() as holder:
            # Another claimer is mid-transaction on the oldest task.
            await holder.execute(text("SELECT id FROM tasks WHERE id = :id FOR UPDATE"), {"id": ids[0]})
            async with sessions() as session:
                claims = await asyncio.wait_for(
                    queue.claim(session, worker_id="w", limit=3, lease_s=60), timeout=5
                )
            await holder.rollback()
        assert {c.task_id for c in claims} == set(ids[1:])
    finally:
        await engine.dispose()
