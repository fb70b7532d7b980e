"""The hot path's statements on PostgreSQL, sent straight through an asyncpg pool.

Under load each statement through SQLAlchemy's asyncio adapter cost about 0.5 ms of CPU,
asyncpg's own prepared statement about 0.1 (docs/levers.md). A submit that waits for its result
made eight of them (BEGIN, the user, the bounds, two INSERTs, COMMIT, then two reads); here it
makes three, one per step: the user, the task stored with its bounds checked, the result. A
dispatcher's batch made ten (claim and images: BEGIN, UPDATE, COMMIT, BEGIN, SELECT, ROLLBACK;
finish: BEGIN, UPDATE, two INSERTs, COMMIT); here it makes two. Each is a single statement in
autocommit, atomic on its own, so it needs no transaction around it.

They mean exactly what the general code in `db.users`, `db.queue` and `db.tasks` means (the
same fence on every write: the task still running this very attempt), which stays the only path
on SQLite and for everything else; tests/integration/test_direct_statements.py runs both
against the same database.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from db.models import QUEUED_SQL, UNFINISHED_SQL, Primitive, SceneResult, Task, TaskStatus, User
from db.queue import (
    INPUT_COLUMNS,
    INPUTS,
    PRIMITIVES,
    SCENES,
    TASK_COLUMNS,
    TASKS,
    Bounds,
    Claim,
    NewInput,
    Outcome,
    StoredImage,
    input_row,
    refuse_when_full,
    task_row,
)
from db.tasks import StoredResult
from db.types import utcnow

_USER_COLUMNS = tuple(column.key for column in User.__table__.columns)


def _typed_parameters(table: Table, columns: tuple[str, ...], first: int, *, arrays: bool = False) -> str:
    """`$1::UUID, $2::VARCHAR(16), …` (`…::UUID[]` with `arrays`): in `INSERT … SELECT` a
    parameter's type comes from its cast, not from the column it fills, so each one names its
    column's PostgreSQL type."""
    dialect = postgresql.dialect()
    suffix = "[]" if arrays else ""
    return ", ".join(f"${first + n}::{table.c[column].type.compile(dialect=dialect)}{suffix}" for n, column in enumerate(columns))


_SELECT_USER = f"SELECT {', '.join(_USER_COLUMNS)} FROM users WHERE id = $1"

# The counts are read before the INSERTs (one snapshot for the whole statement), as the general
# path reads them before its INSERTs; the image's row follows the task's only when it was stored.
_N_TASK = len(TASK_COLUMNS)
_ENQUEUE = f"""
WITH counts AS MATERIALIZED (
    SELECT count(*) FILTER (WHERE owner_id = $2::uuid) AS mine, count(*) AS everyone
    FROM tasks WHERE {UNFINISHED_SQL}
), stored AS (
    INSERT INTO tasks ({", ".join(TASK_COLUMNS)})
    SELECT {_typed_parameters(TASKS, TASK_COLUMNS, 1)} FROM counts
    WHERE counts.mine < ${_N_TASK + 1}::int AND counts.everyone < ${_N_TASK + 2}::int
    RETURNING id
), image AS (
    INSERT INTO task_inputs ({", ".join(INPUT_COLUMNS)})
    SELECT stored.id, {_typed_parameters(INPUTS, INPUT_COLUMNS[1:], _N_TASK + 3)} FROM stored
)
SELECT counts.mine, counts.everyone FROM counts
"""
assert INPUT_COLUMNS[0] == "task_id"

# The scene, the image's size and the primitives in order, in one statement (so one snapshot:
# a result is stored whole and deleted whole). One task's by its key: a generic plan of the
# `= ANY` form cannot know the array is short, and on a small table reads it whole.
_RESULT_COLUMNS = """
SELECT s.task_id, s.class_id, s.class_name, s.confidence, s.top_k, s.detector_model, s.classifier_model,
       i.width, i.height,
       (SELECT coalesce(json_agg(p ORDER BY p.ordinal), '[]') FROM primitives p WHERE p.task_id = s.task_id) AS primitives
FROM scene_results s JOIN task_inputs i ON i.task_id = s.task_id
"""
_RESULT = _RESULT_COLUMNS + "WHERE s.task_id = $1::uuid"
_RESULTS = _RESULT_COLUMNS + "WHERE s.task_id = ANY($1::uuid[])"

# The dispatcher's claim, as `db.queue.claim`, with the claimed tasks' images in the same statement.
_CLAIM = f"""
WITH candidates AS MATERIALIZED (
    SELECT id FROM tasks WHERE {QUEUED_SQL} AND run_after <= $1::timestamptz
    ORDER BY created_at, id LIMIT $2::int FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE tasks SET status = '{TaskStatus.running.value}', attempts = attempts + 1, worker_id = $3::varchar,
        lease_expires_at = $4::timestamptz, started_at = coalesce(started_at, $1::timestamptz)
    WHERE id IN (SELECT id FROM candidates)
    RETURNING id, attempts, owner_id, created_at
)
SELECT claimed.id, claimed.attempts, claimed.owner_id, claimed.created_at, i.data, i.content_type, i.width, i.height
FROM claimed LEFT JOIN task_inputs i ON i.task_id = claimed.id
"""

# The batch's finish, as `db.queue.finish_many`: the fenced status change, and the results of
# exactly the tasks it changed, as arrays of column values (one array per column).
_PRIMITIVE_COLUMNS = tuple(c.key for c in PRIMITIVES.columns if c.key != "id")
_SCENE_COLUMNS = tuple(c.key for c in SCENES.columns)
_FIRST_SCENE = 4 + len(_PRIMITIVE_COLUMNS)
_FINISH = f"""
WITH done AS (
    UPDATE tasks SET status = '{TaskStatus.succeeded.value}', finished_at = $1::timestamptz,
        lease_expires_at = NULL, worker_id = NULL, error = NULL
    WHERE status = '{TaskStatus.running.value}' AND (id, attempts) IN (SELECT * FROM unnest($2::uuid[], $3::int[]))
    RETURNING id
), primitives_stored AS (
    INSERT INTO primitives ({', '.join(_PRIMITIVE_COLUMNS)})
    SELECT * FROM unnest({_typed_parameters(PRIMITIVES, _PRIMITIVE_COLUMNS, 4, arrays=True)}) AS p({', '.join(_PRIMITIVE_COLUMNS)})
    WHERE p.task_id IN (SELECT id FROM done)
), scenes_stored AS (
    INSERT INTO scene_results ({', '.join(_SCENE_COLUMNS)})
    SELECT * FROM unnest({_typed_parameters(SCENES, _SCENE_COLUMNS, _FIRST_SCENE, arrays=True)}) AS s({', '.join(_SCENE_COLUMNS)})
    WHERE s.task_id IN (SELECT id FROM done)
)
SELECT id FROM done
"""


class DirectStatements:
    """An asyncpg pool and the statements above; `open` it once per process, `close` at the end."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, database_url: str, *, max_size: int) -> DirectStatements:
        dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        # asyncpg's own reset when a connection comes back (one round trip) is kept on purpose:
        # it is also what finds a connection left mid-operation by a server going down, and
        # closes it. Skipping it (about 0.1 ms a statement) put such a connection back into
        # use, and a request failed with asyncpg's InternalClientError (docs/levers.md).
        return cls(await asyncpg.create_pool(dsn, min_size=1, max_size=max_size))

    async def close(self, timeout_s: float = 5.0) -> None:
        """Close the pool once its connections are back; after `timeout_s`, close them anyway."""
        try:
            await asyncio.wait_for(self._pool.close(), timeout_s)
        except TimeoutError:
            self._pool.terminate()

    async def user(self, user_id: uuid.UUID) -> User | None:
        """The user, detached from any session: for routes that only read it."""
        row = await self._pool.fetchrow(_SELECT_USER, user_id)
        return None if row is None else User(**dict(row))

    async def enqueue(self, task: Task, upload: NewInput, bounds: Bounds) -> None:
        """Store a new task (from `db.queue.new_task`) and its image, or raise QueueFull."""
        stored = task_row(task)
        image = input_row(task, upload)
        mine, everyone = await self._pool.fetchrow(
            _ENQUEUE,
            *(stored[key] for key in TASK_COLUMNS),
            bounds.per_user,
            bounds.total,
            *(image[key] for key in INPUT_COLUMNS[1:]),
        )
        refuse_when_full(bounds, mine, everyone)

    async def results(self, task_ids: list[uuid.UUID]) -> dict[uuid.UUID, StoredResult]:
        """The results of those of these tasks that have one (as `db.tasks.get_results`)."""
        if not task_ids:
            return {}
        if len(task_ids) == 1:
            rows = await self._pool.fetch(_RESULT, task_ids[0])
        else:
            rows = await self._pool.fetch(_RESULTS, task_ids)
        return dict(_stored_result(row) for row in rows)


    async def claim(self, *, worker_id: str, limit: int, lease_s: float) -> tuple[list[Claim], dict[uuid.UUID, StoredImage]]:
        """`db.queue.claim` and `db.queue.load_inputs` of the claimed tasks, in one statement."""
        if limit <= 0:
            return [], {}
        now = utcnow()
        rows = await self._pool.fetch(_CLAIM, now, limit, worker_id, now + timedelta(seconds=lease_s))
        claims, images = [], {}
        for row in rows:
            task_id = _uuid(row["id"])
            claims.append(Claim(task_id=task_id, attempt=row["attempts"], owner_id=_uuid(row["owner_id"]), created_at=row["created_at"]))
            if row["data"] is not None:
                images[task_id] = StoredImage(row["data"], row["content_type"], row["width"], row["height"])
        return claims, images

    async def finish_many(self, outcomes: list[Outcome]) -> set[uuid.UUID]:
        """`db.queue.finish_many` in one statement: returns the ids stored."""
        if not outcomes:
            return set()
        primitives = [
            {**values, "task_id": o.claim.task_id, "ordinal": ordinal} for o in outcomes for ordinal, values in enumerate(o.primitives)
        ]
        scenes = [{**o.scene, "task_id": o.claim.task_id, "top_k": json.dumps(o.scene["top_k"])} for o in outcomes]
        rows = await self._pool.fetch(
            _FINISH,
            utcnow(),
            [o.claim.task_id for o in outcomes],
            [o.claim.attempt for o in outcomes],
            *([p[column] for p in primitives] for column in _PRIMITIVE_COLUMNS),
            *([s[column] for s in scenes] for column in _SCENE_COLUMNS),
        )
        return {_uuid(row["id"]) for row in rows}


def _uuid(value: uuid.UUID) -> uuid.UUID:
    """asyncpg's own UUID type as the standard one, as the ORM gives it."""
    return value if type(value) is uuid.UUID else uuid.UUID(bytes=value.bytes)


def _stored_result(row: Any) -> tuple[uuid.UUID, StoredResult]:
    task_id = _uuid(row["task_id"])
    primitives = [Primitive(**{**fields, "task_id": task_id}) for fields in json.loads(row["primitives"])]
    scene = SceneResult(
        task_id=task_id,
        class_id=row["class_id"],
        class_name=row["class_name"],
        confidence=row["confidence"],
        top_k=json.loads(row["top_k"]),
        detector_model=row["detector_model"],
        classifier_model=row["classifier_model"],
    )
    return task_id, StoredResult(width=row["width"], height=row["height"], primitives=primitives, scene=scene)
