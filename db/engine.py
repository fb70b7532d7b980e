"""Async engine and sessions for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SessionFactory = async_sessionmaker[AsyncSession]


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10, echo: bool = False) -> AsyncEngine:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # SQLite allows one writer at a time: wait for the lock instead of failing at once.
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=max_overflow)
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection that the server closed (a restart, an idle timeout) is replaced at
    checkout. asyncpg knows without a round trip: SQLAlchemy's `pool_pre_ping` sends three (BEGIN,
    a ping, ROLLBACK) at every checkout, which was a tenth of the Ingress's CPU. A connection that
    breaks in use is handled by SQLAlchemy all the same: the error invalidates the pool."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # off by default; ON DELETE CASCADE needs it
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions for one-statement reads, in autocommit: no BEGIN and no ROLLBACK around the read,
    two round trips fewer. Only for reads whose statements need not see one snapshot together.
    SQLite's driver begins a transaction only before a write, so its reads need nothing else."""
    if engine.dialect.name == "sqlite":
        return session_factory(engine)
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


async def recreate_postgres_database(url: str) -> None:
    """Drop and create the PostgreSQL database that `url` names (empty, not migrated), through
    the server's `postgres` database. For tests and benchmarks; never called by the service."""
    await _administer(url, "DROP DATABASE IF EXISTS {name} WITH (FORCE)", "CREATE DATABASE {name}")


async def drop_postgres_database(url: str) -> None:
    await _administer(url, "DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _administer(url: str, *statements: str) -> None:
    target = make_url(url)
    admin = create_async_engine(target.set(database="postgres"))
    try:
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            for statement in statements:
                await connection.exec_driver_sql(statement.format(name=f'"{target.database}"'))
    finally:
        await admin.dispose()
