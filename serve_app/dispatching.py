"""Running a dispatcher for as long as its owner lives: the `Dispatcher` deployment's, or (in
tests and single-process use) the app's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from db.direct import DirectStatements
from db.engine import SessionFactory, is_sqlite
from db.notify import TaskListener
from deployments.contract import BatchPipeline
from serve_app.dispatcher import Dispatcher
from serve_app.settings import Settings


@asynccontextmanager
async def running_dispatcher(settings: Settings, sessions: SessionFactory, pipeline: BatchPipeline) -> AsyncIterator[Dispatcher]:
    """A started dispatcher, stopped (running batches given their grace) on exit. On PostgreSQL
    it is woken by NOTIFY and only polls as a safety net."""
    notified = not is_sqlite(settings.database_url)
    queue_settings = settings.queue
    if notified:
        queue_settings = queue_settings.model_copy(update={"poll_interval_s": queue_settings.listen_poll_interval_s})
    # A claim and two batches finishing at once (two in flight, the default); more wait their turn.
    direct = await DirectStatements.open(settings.database_url, max_size=3) if notified and settings.database.db_direct_statements else None
    dispatcher = Dispatcher(sessions, pipeline, queue_settings, direct=direct)
    listener = TaskListener(settings.database_url, dispatcher.wake) if notified else None
    dispatcher.start()
    if listener is not None:
        listener.start()
    try:
        yield dispatcher
    finally:
        if listener is not None:
            await listener.stop()
        await dispatcher.stop()
        if direct is not None:
            await direct.close()
