"""Idempotent submission and bounded queues."""

from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from serve_app.api import create_app
from tests.support.api import API, Users, login, submit
from tests.support.databases import make_settings
from tests.support.images import rectangle_image
from tests.support.pipeline import BoundingBoxCatalog


async def test_same_idempotency_key_returns_the_same_task(client: httpx.AsyncClient, users: Users) -> None:
    image = rectangle_image()
    first = await submit(client, users.alice, image, **{"Idempotency-Key": "upload-42"})
    again = await submit(client, users.alice, image, **{"Idempotency-Key": "upload-42"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert (await client.get(f"{API}/tasks", headers=users.alice)).json()["total"] == 1

    # Keys belong to their user: Bob's "upload-42" is a task of his own.
    bobs = await submit(client, users.bob, image, **{"Idempotency-Key": "upload-42"})
    assert bobs.status_code == 202 and bobs.json()["id"] != first.json()["id"]

    # The same key with another image is a mistake worth telling.
    other = await submit(client, users.alice, rectangle_image(size=(64, 64)), **{"Idempotency-Key": "upload-42"})
    assert other.status_code == 409
    assert "different image" in other.json()["detail"]
    assert (await client.get(f"{API}/tasks", headers=users.alice)).json()["total"] == 1


async def test_concurrent_retries_with_one_key_create_one_task(client: httpx.AsyncClient, users: Users) -> None:
    import asyncio

    image = rectangle_image()
    responses = await asyncio.gather(
        *(submit(client, users.alice, image, **{"Idempotency-Key": "burst"}) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert (await client.get(f"{API}/tasks", headers=users.alice)).json()["total"] == 1


async def test_malformed_idempotency_key_is_422(client: httpx.AsyncClient, users: Users) -> None:
    for key in ("", "k" * 256, "has space"):
        response = await submit(client, users.alice, rectangle_image(), **{"Idempotency-Key": key})
        assert response.status_code == 422, key


async def _submit_until_refused(database_url: str, tmp_path: Path, **limits: int) -> list[httpx.Response]:
    # No pipeline: nothing is taken off the queue, so it fills up.
    settings = make_settings(database_url, tmp_path, retry_after_s=7, **limits)
    app = create_app(settings, models=BoundingBoxCatalog())
    async with LifespanManager(app) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http:
            admin = await login(http, "admin", settings.auth.admin_password.get_secret_value())
            await http.post(f"{API}/users", json={"username": "carol", "password": "carol-password"}, headers=admin)
            carol = await login(http, "carol", "carol-password")
            responses = [await submit(http, admin, rectangle_image()) for _ in range(4)]
            responses.append(await submit(http, carol, rectangle_image()))
            return responses


async def test_full_user_queue_is_429_with_retry_after(database_url: str, tmp_path: Path) -> None:
    responses = await _submit_until_refused(database_url, tmp_path, max_queued_per_user=3, max_queued_total=100)
    assert [r.status_code for r in responses] == [202, 202, 202, 429, 202]  # carol is not held back
    refused = responses[3]
    assert refused.headers["Retry-After"] == "7"
    assert "3 unfinished tasks" in refused.json()["detail"]


async def test_full_service_queue_is_503_with_retry_after(database_url: str, tmp_path: Path) -> None:
    responses = await _submit_until_refused(database_url, tmp_path, max_queued_per_user=100, max_queued_total=2)
    assert [r.status_code for r in responses] == [202, 202, 503, 503, 503]
    assert all(r.headers["Retry-After"] == "7" for r in responses[2:])
