"""Shared fixtures: a migrated SQLite and PostgreSQL database, an app with a test pipeline, users;
and the tier marker of every test, from the folder it lives in (see tests/README.md).

Each test that asks for a database starts from empty tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from db import migrate
from db.engine import SessionFactory, create_engine, drop_postgres_database, recreate_postgres_database, session_factory
from serve_app.api import create_app
from serve_app.settings import Settings
from tests.support.api import Users, create_user, login
from tests.support.databases import ADMIN_PASSWORD, BACKENDS, POSTGRES_URL, empty_tables, make_settings, run_outside_event_loop
from tests.support.pipeline import BoundingBoxCatalog, BoundingBoxPipeline
from tests.support.tcp_proxy import CuttableProxy

TESTS = Path(__file__).parent
TIERS = ("unit", "integration", "acceptance", "serve", "cluster", "browser", "infra")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier (the first folder under tests/), so `-m` can pick tiers."""
    for item in items:
        tier = item.path.relative_to(TESTS).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of the tier folders {', '.join(TIERS)}")
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'primscene.db'}"
    run_outside_event_loop(asyncio.run, recreate_postgres_database(POSTGRES_URL))  # a clean slate
    for url in (sqlite_url, POSTGRES_URL):
        run_outside_event_loop(migrate.upgrade, url)
    yield {"sqlite": sqlite_url, "postgresql": POSTGRES_URL}
    run_outside_event_loop(asyncio.run, drop_postgres_database(POSTGRES_URL))


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


@pytest.fixture
async def users(client: httpx.AsyncClient) -> Users:
    admin = await login(client, "admin", ADMIN_PASSWORD)
    alice = await create_user(client, admin, "alice", "alice-password-1")
    bob = await create_user(client, admin, "bob", "bob-password-12")
    return Users(admin=admin, alice=alice, bob=bob)
