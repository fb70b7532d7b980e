"""The database goes away under load and comes back: the API answers 503 with `Retry-After`
(never 500, never a hang), the dispatcher recovers by itself, and no accepted task is lost.

The app reaches PostgreSQL through a proxy that the test cuts, which looks to the app like a
stopped server (connections dropped, new ones refused) or like one that is shutting down (new
connections answered with SQLSTATE 57P03, as PostgreSQL does while it stops). `scripts/reliability.py` does the same
with a real `pg_ctlcluster stop` against the whole Ray Serve deployment."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from db.engine import create_engine, session_factory
from db.models import SceneResult, Task
from serve_app.api import create_app
from tests.support.api import API, create_user, login, submit, wait_until_finished
from tests.support.databases import ADMIN_PASSWORD, empty_tables, make_settings
from tests.support.images import rectangle_image
from tests.support.pipeline import BoundingBoxCatalog, BoundingBoxPipeline
from tests.support.tcp_proxy import CuttableProxy

OUTAGE_S = 1.5
ANSWER_WITHIN_S = 5.0
# Tasks whose outcome could not be stored during the outage run again once their lease has
# expired and a rescue round has seen it: short timers, so the test need not wait for defaults.
LEASE_S = 2.0
RESCUE_INTERVAL_S = 0.5


@pytest.fixture
async def client_via_proxy(
    postgres_url: str, postgres_proxy: CuttableProxy, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    await empty_tables(postgres_url)
    url = make_url(postgres_url).set(port=postgres_proxy.port).render_as_string(hide_password=False)
    settings = make_settings(url, tmp_path)
    settings.queue = settings.queue.model_copy(update={"lease_s": LEASE_S, "rescue_interval_s": RESCUE_INTERVAL_S})
    app = create_app(settings, models=BoundingBoxCatalog(), pipeline=BoundingBoxPipeline(delay_s=0.5))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://primscene.test") as http:
            yield http


async def _timed(request) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await asyncio.wait_for(request, timeout=ANSWER_WITHIN_S * 2)
    return response, time.monotonic() - started


@pytest.mark.parametrize("outage", ["stopped", "shutting down"])
async def test_database_outage_is_503_and_loses_nothing(
    client_via_proxy: httpx.AsyncClient, postgres_proxy: CuttableProxy, postgres_url: str, outage: str
) -> None:
    client = client_via_proxy
    admin = await login(client, "admin", ADMIN_PASSWORD)
    alice = await create_user(client, admin, "alice", "alice-password-1")
    accepted = [(await submit(client, alice, rectangle_image())).json()["id"] for _ in range(6)]
    await asyncio.sleep(0.2)  # some are running now

    await postgres_proxy.cut(shutting_down=outage == "shutting down")
    outage_ends = time.monotonic() + OUTAGE_S
    answers: list[tuple[str, int, float]] = []
    while time.monotonic() < outage_ends:
        for name, request in (
            ("submit", submit(client, alice, rectangle_image())),
            ("list", client.get(f"{API}/tasks", headers=alice)),
            ("status", client.get(f"{API}/tasks/{accepted[0]}", headers=alice)),
            ("login", client.post(f"{API}/auth/token", data={"username": "alice", "password": "alice-password-1"})),
        ):
            response, took = await _timed(request)
            answers.append((name, response.status_code, took))
            assert response.status_code == 503, (name, response.text)
            assert int(response.headers["Retry-After"]) >= 1
            assert "database" in response.json()["detail"]
            assert took < ANSWER_WITHIN_S, (name, took)
        await asyncio.sleep(0.2)
    assert (await client.get("/readyz")).status_code == 503
    await postgres_proxy.restore()

    # Without any help, the dispatcher finishes everything accepted before the outage.
    for task_id in accepted:
        assert (await wait_until_finished(client, alice, task_id, timeout_s=60))["status"] == "succeeded"
    after = (await submit(client, alice, rectangle_image())).json()["id"]
    assert (await wait_until_finished(client, alice, after))["status"] == "succeeded"
    assert (await client.get("/readyz")).status_code == 200

    engine = create_engine(postgres_url)
    async with session_factory(engine)() as session:
        ids = [uuid.UUID(task_id) for task_id in [*accepted, after]]
        assert await session.scalar(select(func.count()).select_from(Task)) == len(ids)  # nothing half-stored
        results = await session.scalar(select(func.count()).select_from(SceneResult).where(SceneResult.task_id.in_(ids)))
        assert results == len(ids)  # one result each, none duplicated
    await engine.dispose()
    assert {name for name, _, _ in answers} == {"submit", "list", "status", "login"}
