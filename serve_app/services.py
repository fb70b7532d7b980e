"""What one running app holds: settings, database, password hasher, token codec, models, its dispatcher (if it
runs one) and the feed that wakes requests waiting for tasks."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from db.direct import DirectStatements
from db.engine import SessionFactory
from deployments.contract import ModelCatalog
from serve_app.dispatcher import Dispatcher
from serve_app.security import Passwords, TokenCodec
from serve_app.settings import Settings
from serve_app.task_changes import TaskChangeFeed


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    reads: SessionFactory  # autocommit, for single-statement reads on the hot path (db.engine.read_session_factory)
    passwords: Passwords
    tokens: TokenCodec
    models: ModelCatalog
    dispatcher: Dispatcher | None
    changes: TaskChangeFeed
    direct: DirectStatements | None  # PostgreSQL: the submit path's statements without SQLAlchemy (db/direct.py)

    def wake_dispatcher(self) -> None:
        """Tell the local dispatcher that work arrived, so it need not wait for its next poll."""
        if self.dispatcher is not None:
            self.dispatcher.wake()
