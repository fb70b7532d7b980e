"""The schema comes from Alembic migrations, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from asgi_lifespan import LifespanManager
from sqlalchemy import insert, inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from db import migrate
from db.engine import create_engine
from db.migrate import SchemaOutOfDate
from db.models import Task, User, WebhookState
from serve_app.api import create_app
from tests.support.databases import fresh_postgres_database, make_settings, run_outside_event_loop
from tests.support.pipeline import BoundingBoxCatalog

TABLES = {"login_throttle", "webhook_deliveries", "alembic_version", "users", "tasks", "task_inputs", "primitives", "scene_results", "task_change_log"}
SCRATCH_DB = "primscene_test_migrations"


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    return await fresh_postgres_database(SCRATCH_DB)


async def _tables_and_drift(url: str) -> tuple[set[str], list]:
    engine = create_engine(url)

    def inspect_sync(connection):
        tables = set(inspect(connection).get_table_names())
        drift = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        return tables, drift

    async with engine.connect() as connection:
        result = await connection.run_sync(inspect_sync)
    await engine.dispose()
    return result


async def test_migrations_build_the_models_schema_and_roll_back(empty_database: str) -> None:
    run_outside_event_loop(migrate.upgrade, empty_database)
    tables, drift = await _tables_and_drift(empty_database)
    assert tables == TABLES
    assert drift == []  # the tables the code uses are exactly what the migrations made
    run_outside_event_loop(migrate.downgrade, empty_database)
    tables, _ = await _tables_and_drift(empty_database)
    assert tables == {"alembic_version"}
    run_outside_event_loop(migrate.upgrade, empty_database)
    assert (await _tables_and_drift(empty_database))[0] == TABLES


async def test_app_refuses_an_unmigrated_database(empty_database: str, tmp_path: Path) -> None:
    app = create_app(make_settings(empty_database, tmp_path), models=BoundingBoxCatalog())
    with pytest.raises(SchemaOutOfDate, match="db.migrate"):
        async with LifespanManager(app):
            pass


async def _store_webhook_state(url: str, state: str) -> None:
    engine = create_engine(url)
    now, user = datetime.now(UTC), uuid.uuid4()
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(User.__table__).values(id=user, username=f"u-{user.hex[:8]}", hashed_password="x", is_admin=False, created_at=now))
            await connection.execute(insert(Task.__table__).values(
                id=uuid.uuid4(), owner_id=user, status="queued", attempts=0, max_attempts=3, run_after=now, created_at=now, webhook_state=state,
            ))
    finally:
        await engine.dispose()


async def test_webhook_state_is_one_of_its_values(empty_database: str) -> None:
    run_outside_event_loop(migrate.upgrade, empty_database)
    for state in WebhookState:
        await _store_webhook_state(empty_database, state.value)
    with pytest.raises(IntegrityError):
        await _store_webhook_state(empty_database, "delivred")
    run_outside_event_loop(migrate.downgrade, empty_database, "0003")  # the constraint is this migration's
    await _store_webhook_state(empty_database, "delivred")
