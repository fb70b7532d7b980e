"""The app with the test pipeline, in-process, and an HTTP client that calls it through ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from deployments.contract import ModelCatalog
from serve_app.api import create_app
from serve_app.settings import Settings
from tests.support.pipeline import BoundingBoxCatalog, BoundingBoxPipeline


def make_app(settings: Settings, pipeline: BoundingBoxPipeline | None = None, models: ModelCatalog | None = None) -> FastAPI:
    return create_app(settings, models=models or BoundingBoxCatalog(), pipeline=pipeline or BoundingBoxPipeline())


@asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` (started by the caller: its lifespan keeps what requests need on
    `app.state` and hands no per-request state over)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://primscene.test") as http:
        yield http
