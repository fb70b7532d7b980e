"""The hot queries keep their indexes on a table of some size (PostgreSQL): a small version of
`scripts/scale.py`, which measures them on a million rows (docs/scale.md).

30,000 finished tasks and 1,000 queued over 100 users, filled by COPY; each operation runs once
while its statements are caught, and PostgreSQL's plan of each must read `tasks` through an index.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from db import direct, queue, retention, tasks
from db.engine import create_engine, session_factory
from db.types import utcnow
from scripts.large_table import plans
from scripts.large_table.fill import YEAR, Filled, fill
from tests.support.databases import migrated_postgres_database, run_outside_event_loop

FINISHED, QUEUED, USERS = 30_000, 1_000, 100


@pytest.fixture(scope="module")
def filled_url() -> tuple[str, Filled]:
    url = migrated_postgres_database("primscene_test_query_plans")
    filled = run_outside_event_loop(
        asyncio.run, fill(url, users=USERS, finished=FINISHED, queued=QUEUED, old=1_000, password_hash="not-a-hash")
    )
    return url, filled


@pytest.fixture(scope="module")
async def engine(filled_url: tuple[str, Filled]) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(filled_url[0])
    yield engine
    await engine.dispose()


def _owner(filled_url: tuple[str, Filled]) -> uuid.UUID:
    return filled_url[1].user_ids[3]


async def _scans(engine: AsyncEngine, operation) -> list[str]:
    """The scans of `tasks` in the plans of every statement that `operation(session)` sends."""
    with plans.captured(engine) as caught:
        async with session_factory(engine)() as session:
            await operation(session)
    assert caught, "the operation sent no statement"
    found = []
    for statement in caught:
        found += [scan for scan in plans.scans_of(await plans.explain(engine, statement, analyze=False)) if " on tasks" in scan]
    return found


async def _a_finished_task(engine: AsyncEngine, owner: uuid.UUID) -> uuid.UUID:
    async with session_factory(engine)() as session:
        page = await tasks.list_owned(session, owner, status="succeeded", limit=1, after=None)
    return page.tasks[0].id


OPERATIONS = {
    "claim": lambda owner, task: lambda s: queue.claim(s, worker_id="plans", limit=8, lease_s=30),
    "submit_bounds": lambda owner, task: lambda s: queue._check_bounds(s, owner, queue.Bounds(per_user=10**6, total=10**7)),
    "rescue": lambda owner, task: lambda s: queue.rescue_expired(s),
    "unfinished_counts": lambda owner, task: lambda s: queue.unfinished_counts(s),
    "list_first_page": lambda owner, task: lambda s: tasks.list_owned(s, owner, status=None, limit=20, after=None),
    "get_task": lambda owner, task: lambda s: tasks.get_owned(s, task, owner),
    "retention": lambda owner, task: lambda s: retention.delete_finished_before(s, utcnow() - YEAR - timedelta(days=1000)),
}


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_hot_queries_read_tasks_through_an_index(engine: AsyncEngine, filled_url: tuple[str, Filled], name: str) -> None:
    owner = _owner(filled_url)
    operation = OPERATIONS[name](owner, await _a_finished_task(engine, owner))
    scans = await _scans(engine, operation)
    assert scans, f"{name}: no scan of tasks in its plans"
    assert not [scan for scan in scans if scan.startswith("Seq Scan")], f"{name} reads the whole table: {scans}"
    # The partial indexes of unfinished tasks (migration 0006): the oldest queued tasks without a
    # sort of them all, and the unfinished count without the history.
    partial = {"claim": "ix_tasks_queued_created_at_id", "submit_bounds": "ix_tasks_unfinished_owner_id"}.get(name)
    if partial:
        assert any(partial in scan for scan in scans), scans


DIRECT_STATEMENTS = ("_SELECT_USER", "_ENQUEUE", "_RESULT", "_RESULTS", "_CLAIM", "_FINISH")
TABLES = ("tasks", "task_inputs", "scene_results", "primitives")  # not the 100 users: a table that small is best read whole


@pytest.mark.parametrize("name", DIRECT_STATEMENTS)
async def test_direct_statements_keep_their_indexes_in_a_generic_plan(filled_url: tuple[str, Filled], name: str) -> None:
    """db/direct.py's statements are prepared once and, after a few runs, planned without their
    values (a generic plan): that plan must read no large table whole either."""
    statement = getattr(direct, name)
    parameters = max(int(n) for n in re.findall(r"\$(\d+)", statement))
    connection = await asyncpg.connect(make_url(filled_url[0]).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        await connection.execute(f"PREPARE direct_statement AS {statement}")
        plan = [row[0] for row in await connection.fetch(f"EXPLAIN EXECUTE direct_statement({', '.join(['NULL'] * parameters)})")]
    finally:
        await connection.close()
    whole = [line.strip() for line in plan if "Seq Scan" in line and any(f" on {table}" in line for table in TABLES)]
    assert not whole, f"{name} reads a table whole: {whole}"
