"""Shared fixtures: a migrated SQLite and PostgreSQL database, an app with a test pipeline, users.

PostgreSQL is a real server (`make test` makes sure one runs); its URL can be changed with
PRIMSCENE_TEST_POSTGRES_URL. Each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from db import migrate
from db.engine import SessionFactory, create_engine, drop_postgres_database, recreate_postgres_database, session_factory
from serve_app.api import create_app
from serve_app.settings import (
    AuthSettings,
    DatabaseSettings,
    GeneralSettings,
    LimitsSettings,
    QueueSettings,
    RetentionSettings,
    Settings,
)
from tests.support.api import create_user, login
from tests.support.pipeline import BoundingBoxCatalog, BoundingBoxPipeline
from tests.support.tcp_proxy import CuttableProxy

# Each test session gets its own database by default, so two runs at once do not empty each
# other's tables.
POSTGRES_URL = os.environ.get(
    "PRIMSCENE_TEST_POSTGRES_URL", f"postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_test_{os.getpid()}"
)
ADMIN_PASSWORD = "admin-password-for-tests"
BACKENDS = ["sqlite", "postgresql"]


def run_outside_event_loop(fn, *args):
    """Alembic's environment starts its own event loop; keep it off the tests' loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


async def fresh_postgres_database(name: str) -> str:
    """Drop and create a database next to the test database; returns its URL (not migrated)."""
    url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    await recreate_postgres_database(url)
    return url


@pytest.fixture(scope="session")
def migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'primscene.db'}"
    run_outside_event_loop(asyncio.run, recreate_postgres_database(POSTGRES_URL))  # a clean slate
    for url in (sqlite_url, POSTGRES_URL):
        run_outside_event_loop(migrate.upgrade, url)
    yield {"sqlite": sqlite_url, "postgresql": POSTGRES_URL}
    run_outside_event_loop(asyncio.run, drop_postgres_database(POSTGRES_URL))


async def empty_tables(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM users"))  # cascades to tasks, inputs, results
        await connection.execute(text("DELETE FROM login_throttle"))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, migrated_urls: dict[str, str]) -> str:
    url = migrated_urls[request.param]
    await empty_tables(url)
    return url


@pytest.fixture
def postgres_url(migrated_urls: dict[str, str]) -> Iterator[str]:
    """For tests of PostgreSQL-only behaviour (row locks, concurrent claimers)."""
    yield migrated_urls["postgresql"]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=12)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> SessionFactory:
    return session_factory(engine)


def make_settings(
    database_url: str, data_dir: Path, *, auth: dict | None = None, retention: dict | None = None, **limits: int
) -> Settings:
    return Settings(
        general=GeneralSettings(data_dir=data_dir),
        database=DatabaseSettings(database_url=database_url),
        auth=AuthSettings(admin_username="admin", admin_password=ADMIN_PASSWORD, **(auth or {})),
        limits=LimitsSettings(**limits),
        queue=QueueSettings(poll_interval_s=0.02, heartbeat_s=0.5, lease_s=5, events_poll_interval_s=0.05),
        retention=RetentionSettings(**(retention or {})),
    )


@pytest.fixture
async def postgres_proxy(postgres_url: str) -> AsyncIterator[CuttableProxy]:
    """A loopback proxy to the test PostgreSQL server that a test can cut and restore."""
    url = make_url(postgres_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def pipeline() -> BoundingBoxPipeline:
    return BoundingBoxPipeline()


@pytest.fixture
async def client(settings: Settings, pipeline: BoundingBoxPipeline) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, models=BoundingBoxCatalog(), pipeline=pipeline)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://primscene.test") as http:
            yield http


@dataclass
class Users:
    admin: dict[str, str]
    alice: dict[str, str]
    bob: dict[str, str]


@pytest.fixture
async def users(client: httpx.AsyncClient) -> Users:
    admin = await login(client, "admin", ADMIN_PASSWORD)
    alice = await create_user(client, admin, "alice", "alice-password-1")
    bob = await create_user(client, admin, "bob", "bob-password-12")
    return Users(admin=admin, alice=alice, bob=bob)
