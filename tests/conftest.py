"""Shared fixtures: a migrated SQLite and PostgreSQL database, an app with a test pipeline, users;
and the tier marker of every test, from the folder it lives in (see tests/README.md).

Each test that asks for a database starts from empty tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# The app, the database code and their libraries (about 1.5 s of CPU) are imported by the fixtures
# that use them: pytest-xdist's controller loads this file before it starts any worker, and
# needs none of them.
if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

    from db.engine import SessionFactory
    from serve_app.settings import Settings
    from tests.support.api import Users
    from tests.support.pipeline import BoundingBoxPipeline
    from tests.support.tcp_proxy import CuttableProxy

BACKENDS = ["sqlite", "postgresql"]
TESTS = Path(__file__).parent
TIERS = ("unit", "integration", "acceptance", "serve", "cluster", "browser", "infra")


@pytest.hookimpl(optionalhook=True)  # without pytest-xdist (`-p no:xdist`) there is no such hook
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadfile` as tests/support/scheduling.py describes."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.support.scheduling import LongestFileFirst

    return LongestFileFirst(config, log)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, or a run without workers: it sees every report
        from tests.support.scheduling import FileTimes

        config.pluginmanager.register(FileTimes(config), "primscene-file-times")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier (the first folder under tests/), so `-m` can pick tiers."""
    for item in items:
        tier = item.path.relative_to(TESTS).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of the tier folders {', '.join(TIERS)}")
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from db import migrate
    from db.engine import drop_postgres_database, recreate_postgres_database
    from tests.support.databases import POSTGRES_URL, run_outside_event_loop

    sqlite_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'primscene.db'}"
    run_outside_event_loop(asyncio.run, recreate_postgres_database(POSTGRES_URL))  # a clean slate
    for url in (sqlite_url, POSTGRES_URL):
        run_outside_event_loop(migrate.upgrade, url)
    yield {"sqlite": sqlite_url, "postgresql": POSTGRES_URL}
    run_outside_event_loop(asyncio.run, drop_postgres_database(POSTGRES_URL))


@pytest.fixture(scope="module", params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, migrated_urls: dict[str, str]) -> str:
    """The migrated database of one backend, shared by a test file's tests (emptied by
    `database_url` before each test). `parametrize("backend_url", [...], indirect=True)` picks one."""
    return migrated_urls[request.param]


@pytest.fixture
async def database_url(backend_url: str) -> str:
    """`backend_url`, its tables emptied for this test."""
    from tests.support.databases import empty_tables

    await empty_tables(backend_url)
    return backend_url


@pytest.fixture
def postgres_url(migrated_urls: dict[str, str]) -> Iterator[str]:
    """For tests of PostgreSQL-only behaviour (row locks, concurrent claimers)."""
    yield migrated_urls["postgresql"]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    from db.engine import create_engine

    engine = create_engine(database_url, pool_size=12)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> SessionFactory:
    from db.engine import session_factory

    return session_factory(engine)


@pytest.fixture
async def postgres_proxy(postgres_url: str) -> AsyncIterator[CuttableProxy]:
    """A loopback proxy to the test PostgreSQL server that a test can cut and restore."""
    from sqlalchemy.engine import make_url

    from tests.support.tcp_proxy import CuttableProxy

    url = make_url(postgres_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


# One app per test file and backend, started for each test: building one costs more CPU than most
# tests (FastAPI resolves every route on the first request), and it keeps that work between
# starts. Each start is a fresh lifespan (engine, first admin, dispatcher), stopped at the end of
# the test, so no test's work runs on into the next. A file changes its app by overriding
# `app_settings` or `pipeline` (module scope).
@pytest.fixture(scope="module")
def app_settings(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from tests.support.databases import make_settings

    return make_settings(backend_url, tmp_path_factory.mktemp("data"))


@pytest.fixture
def settings(app_settings: Settings, database_url: str) -> Settings:
    """The app's settings, for a test that starts from empty tables."""
    return app_settings


@pytest.fixture(scope="module")
def pipeline() -> BoundingBoxPipeline:
    from tests.support.pipeline import BoundingBoxPipeline

    return BoundingBoxPipeline()


@pytest.fixture(scope="module")
def app(app_settings: Settings, pipeline: BoundingBoxPipeline) -> FastAPI:
    from tests.support.apps import make_app

    return make_app(app_settings, pipeline)


@pytest.fixture
async def client(app: FastAPI, settings: Settings, pipeline: BoundingBoxPipeline) -> AsyncIterator[httpx.AsyncClient]:
    from asgi_lifespan import LifespanManager

    from tests.support.apps import asgi_client

    async with LifespanManager(app), asgi_client(app) as http:
        yield http
        pipeline.reset()  # ends the delays still running, so that stopping need not wait for them


@pytest.fixture
async def users(client: httpx.AsyncClient) -> Users:
    from tests.support.api import Users, create_user, login
    from tests.support.databases import ADMIN_PASSWORD

    admin = await login(client, "admin", ADMIN_PASSWORD)
    alice = await create_user(client, admin, "alice", "alice-password-1")
    bob = await create_user(client, admin, "bob", "bob-password-12")
    return Users(admin=admin, alice=alice, bob=bob)
