"""Secrets (the JWT key, the database password) never reach logs or error bodies, and error
bodies never carry stack traces — also while the database is down or code fails unexpectedly."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url

from serve_app.api import create_app
from serve_app.settings import AuthSettings, DatabaseSettings, Environment, GeneralSettings, Settings
from tests.support.api import API, create_user, login, submit, wait_until_finished
from tests.support.databases import ADMIN_PASSWORD, empty_tables
from tests.support.images import rectangle_image
from tests.support.pipeline import BoundingBoxCatalog, BoundingBoxPipeline
from tests.support.tcp_proxy import CuttableProxy

JWT_SECRET = "jwt-secret-that-must-never-be-seen-0123456789"
DB_PASSWORD = "db-password-that-must-never-be-seen"  # PostgreSQL here trusts loopback, so any password works


class BrokenCatalog(BoundingBoxCatalog):
    async def list_models(self):
        raise RuntimeError("the model registry broke")


@pytest.fixture
def production_settings(postgres_url: str, postgres_proxy: CuttableProxy, tmp_path: Path) -> Settings:
    url = make_url(postgres_url).set(port=postgres_proxy.port, password=DB_PASSWORD).render_as_string(hide_password=False)
    return Settings(
        general=GeneralSettings(environment=Environment.production, data_dir=tmp_path),
        database=DatabaseSettings(database_url=url),
        auth=AuthSettings(jwt_secret=JWT_SECRET, admin_password=ADMIN_PASSWORD),
    )


@pytest.fixture
async def client(production_settings: Settings, postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await empty_tables(postgres_url)
    app = create_app(production_settings, models=BrokenCatalog(), pipeline=BoundingBoxPipeline())
    async with LifespanManager(app) as manager:
        # Unexpected errors become responses, as behind a real server, instead of raising here.
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://primscene.test") as http:
            yield http


def _assert_clean(response: httpx.Response) -> None:
    seen = response.text + str(response.headers)
    for secret in (JWT_SECRET, DB_PASSWORD):
        assert secret not in seen
    assert "Traceback" not in seen and 'File "' not in seen


async def test_secrets_stay_out_of_logs_and_error_bodies(
    client: httpx.AsyncClient, postgres_proxy: CuttableProxy, production_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responses = []
    admin = await login(client, "admin", ADMIN_PASSWORD)
    alice = await create_user(client, admin, "alice", "alice-password-1")
    task = (await submit(client, alice, rectangle_image())).json()
    await wait_until_finished(client, alice, task["id"])
    responses += [
        await client.post(f"{API}/auth/token", data={"username": "alice", "password": "wrong"}),
        await client.get(f"{API}/tasks", headers={"Authorization": "Bearer forged.token.value"}),
        await client.get(f"{API}/tasks/not-a-uuid", headers=alice),
        await client.post(f"{API}/tasks", files={"image": ("x.png", b"not an image", "image/png")}, headers=alice),
    ]
    broken = await client.get(f"{API}/models", headers=alice)  # code fails unexpectedly
    assert broken.status_code == 500 and broken.json() == {"detail": "Internal error"}
    responses.append(broken)
    await postgres_proxy.cut()  # and the database goes away
    responses += [
        await client.get(f"{API}/tasks", headers=alice),
        await client.post(f"{API}/auth/token", data={"username": "alice", "password": "alice-password-1"}),
        await client.get("/readyz"),
    ]
    assert [r.status_code for r in responses] == [401, 401, 422, 415, 500, 503, 503, 503]
    for response in responses:
        _assert_clean(response)
    assert "the model registry broke" in caplog.text  # the log does tell operators what failed
    for secret in (JWT_SECRET, DB_PASSWORD):
        assert secret not in caplog.text
        assert secret not in repr(production_settings) and secret not in str(production_settings.model_dump())
