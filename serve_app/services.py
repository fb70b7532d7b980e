"""What one running app holds: settings, database, token codec, models and its dispatcher."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import SessionFactory
from deployments.contract import ModelCatalog
from serve_app.dispatcher import Dispatcher
from serve_app.security import TokenCodec
from serve_app.settings import Settings


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    tokens: TokenCodec
    models: ModelCatalog
    dispatcher: Dispatcher | None

    def wake_dispatcher(self) -> None:
        """Tell the local dispatcher that work arrived, so it need not wait for its next poll."""
        if self.dispatcher is not None:
            self.dispatcher.wake()
