"""The test databases and the settings that point an app at them.

PostgreSQL is a real server (`make test` makes sure one runs); its URL can be changed with
PRIMSCENE_TEST_POSTGRES_URL. SQLite is a file in the session's temporary directory.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import text

from db import migrate
from db.engine import create_engine, recreate_postgres_database
from serve_app.settings import (
    AuthSettings,
    DatabaseSettings,
    GeneralSettings,
    LimitsSettings,
    QueueSettings,
    RetentionSettings,
    Settings,
)

# Each test session gets its own database by default, so two runs at once do not empty each
# other's tables.
POSTGRES_URL = os.environ.get(
    "PRIMSCENE_TEST_POSTGRES_URL", f"postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_test_{os.getpid()}"
)
ADMIN_PASSWORD = "admin-password-for-tests"
# Real Argon2id, at a cost far below production's (allowed in development only): each test creates
# and logs in users, and at pwdlib's defaults that is most of a test's time.
TEST_HASHING = {"password_hash_time_cost": 1, "password_hash_memory_kib": 1024, "password_hash_parallelism": 1}


def run_outside_event_loop(fn, *args):
    """Alembic's environment starts its own event loop; keep it off the tests' loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


async def fresh_postgres_database(name: str) -> str:
    """Drop and create a database next to the test database; returns its URL (not migrated)."""
    url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    await recreate_postgres_database(url)
    return url


def migrated_postgres_database(name: str) -> str:
    """A fresh database next to the test database, migrated to head; returns its URL."""
    url = run_outside_event_loop(asyncio.run, fresh_postgres_database(name))
    run_outside_event_loop(migrate.upgrade, url)
    return url


async def empty_tables(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM users"))  # cascades to tasks, inputs, results
        await connection.execute(text("DELETE FROM login_throttle"))
    await engine.dispose()


def make_settings(
    database_url: str, data_dir: Path, *, auth: dict | None = None, retention: dict | None = None, **limits: int
) -> Settings:
    """Settings for an app under test: the first admin's password known, queue timings short."""
    return Settings(
        general=GeneralSettings(data_dir=data_dir),
        database=DatabaseSettings(database_url=database_url),
        auth=AuthSettings(admin_username="admin", admin_password=ADMIN_PASSWORD, **{**TEST_HASHING, **(auth or {})}),
        limits=LimitsSettings(**limits),
        queue=QueueSettings(poll_interval_s=0.02, heartbeat_s=0.5, lease_s=5, events_poll_interval_s=0.05),
        retention=RetentionSettings(**(retention or {})),
    )
