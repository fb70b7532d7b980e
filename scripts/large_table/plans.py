"""The SQL that an operation sends, caught as it runs, and PostgreSQL's plan of each statement.

`captured(engine)` records every statement and its parameters (SQLAlchemy's
`before_cursor_execute`); `explain` runs `EXPLAIN (ANALYZE, BUFFERS)` of one inside a transaction
that is rolled back, so an UPDATE or DELETE is planned and timed but changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

SKIPPED = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SELECT pg_notify", "NOTIFY", "select pg_catalog", "SHOW")


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: object


@contextmanager
def captured(engine: AsyncEngine) -> Iterator[list[Statement]]:
    statements: list[Statement] = []

    def record(conn, cursor, sql, parameters, context, executemany) -> None:
        if not sql.lstrip().startswith(SKIPPED) and not executemany:
            statements.append(Statement(sql, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def explain(engine: AsyncEngine, statement: Statement, *, analyze: bool = True) -> list[str]:
    """The plan's lines (text format); with `analyze`, as executed, then rolled back. An INSERT
    is only planned: run again, it would repeat a key that is already stored."""
    analyze = analyze and not statement.sql.lstrip().upper().startswith("INSERT")
    options = "ANALYZE, BUFFERS" if analyze else "COSTS"
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            result = await connection.exec_driver_sql(f"EXPLAIN ({options}) {statement.sql}", statement.parameters)
            return [row[0] for row in result]
        finally:
            await transaction.rollback()


def scans_of(plan: list[str]) -> list[str]:
    """The scan nodes of a text plan, e.g. "Index Scan using ix_tasks_queued on tasks"."""
    nodes = []
    for line in plan:
        text = line.strip().removeprefix("->").strip()
        if " Scan" in text.split("  (")[0]:
            nodes.append(text.split("  (")[0])
    return nodes
