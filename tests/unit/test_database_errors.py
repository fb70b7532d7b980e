"""What a client is told when the database connection under its request is broken: 503 with
`Retry-After` (try again), never 500."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from serve_app.errors import install_error_handlers


@pytest.mark.parametrize(
    "error",
    [
        # A pooled connection that a server going down left mid-operation (the reliability run's outage).
        asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
        asyncpg.InterfaceError("connection is closed"),
    ],
)
async def test_a_broken_database_connection_is_503_with_retry_after(error: Exception) -> None:
    app = FastAPI()
    install_error_handlers(app, retry_after_s=2)

    @app.get("/needs-the-database")
    async def needs_the_database() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://primscene.test") as http:
        response = await http.get("/needs-the-database")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert "database is unavailable" in response.json()["detail"]
