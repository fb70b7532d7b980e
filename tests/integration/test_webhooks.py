"""Webhooks: a finished task's outcome is POSTed to its callback URL, signed with the owner's
secret, retried with backoff, only to allowed hosts, and every attempt shows on the task."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import Task
from serve_app.settings import Settings, WebhookSettings
from tests.support.api import API, Users, submit, wait_until_finished
from tests.support.databases import make_settings
from tests.support.images import rectangle_image
from tests.support.live_server import live_server

MAX_ATTEMPTS = 3


@dataclass
class Receiver:
    """A webhook receiver on loopback that answers `plan` statuses in turn (then 204)."""

    url: str = ""
    plan: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            code = self.plan.pop(0) if self.plan else 204
            headers = {"Location": "http://169.254.169.254/latest/meta-data/"} if code in (301, 302, 307) else {}
            return Response(status_code=code, headers=headers)

        return app


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[Receiver]:
    receiver = Receiver()
    with live_server(receiver.app()) as url:
        receiver.url = url
        yield receiver


@pytest.fixture
def receiver(receiver_server: Receiver, client: httpx.AsyncClient) -> Receiver:
    """The file's receiver, with nothing planned or received yet (after the last test's tables,
    and so its deliveries, are gone)."""
    receiver_server.plan.clear()
    receiver_server.received.clear()
    return receiver_server


@pytest.fixture(scope="module")
def app_settings(backend_url: str, tmp_path_factory: pytest.TempPathFactory, receiver_server: Receiver) -> Settings:
    settings = make_settings(backend_url, tmp_path_factory.mktemp("data"))
    settings.webhooks = WebhookSettings(
        webhook_allowed_hosts=receiver_server.url.removeprefix("http://"),
        webhook_max_attempts=MAX_ATTEMPTS,
        webhook_retry_backoff_s=0.2,
        webhook_poll_interval_s=0.05,
    )
    return settings


async def _submit_with_callback(client: httpx.AsyncClient, owner: dict[str, str], url: str) -> httpx.Response:
    return await client.post(
        f"{API}/tasks", files={"image": ("x.png", rectangle_image(), "image/png")}, data={"callback_url": url}, headers=owner
    )


async def _webhook_when(client: httpx.AsyncClient, owner: dict[str, str], task_id: str, states: set[str]) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        webhook = (await client.get(f"{API}/tasks/{task_id}/webhook", headers=owner)).json()
        if webhook["state"] in states:
            return webhook
        await asyncio.sleep(0.05)
    raise AssertionError(f"webhook still {webhook['state']}")


async def test_outcome_is_posted_signed_once_the_task_has_finished(
    client: httpx.AsyncClient, users: Users, receiver: Receiver
) -> None:
    callback = f"{receiver.url}/hook"
    task = (await _submit_with_callback(client, users.alice, callback)).json()
    assert task["callback_url"] == callback and task["webhook_state"] == "pending"
    await wait_until_finished(client, users.alice, task["id"])
    webhook = await _webhook_when(client, users.alice, task["id"], {"delivered"})
    assert [(a["attempt"], a["status_code"], a["delivered"]) for a in webhook["attempts"]] == [(1, 204, True)]

    [(headers, body)] = receiver.received
    secret = (await client.get(f"{API}/users/me/webhook-secret", headers=users.alice)).json()["secret"]
    signed = f"{headers['x-primscene-timestamp']}.".encode() + body
    assert headers["x-primscene-signature"] == "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    payload = json.loads(body)
    result = (await client.get(f"{API}/tasks/{task['id']}/result", headers=users.alice)).json()
    assert payload["event"] == "task.finished" and payload["task"]["id"] == task["id"]
    assert payload["task"]["status"] == "succeeded" and payload["result"] == result
    bob_secret = (await client.get(f"{API}/users/me/webhook-secret", headers=users.bob)).json()["secret"]
    assert bob_secret != secret  # a secret per user
    rotated = (await client.post(f"{API}/users/me/webhook-secret", headers=users.alice)).json()["secret"]
    assert rotated != secret


async def test_failed_deliveries_are_retried_with_backoff_and_shown(
    client: httpx.AsyncClient, users: Users, receiver: Receiver
) -> None:
    receiver.plan = [500, 503]
    task = (await _submit_with_callback(client, users.alice, f"{receiver.url}/hook")).json()
    webhook = await _webhook_when(client, users.alice, task["id"], {"delivered", "failed"})
    assert webhook["state"] == "delivered"
    assert [(a["status_code"], a["delivered"]) for a in webhook["attempts"]] == [(500, False), (503, False), (204, True)]
    assert webhook["attempts"][0]["error"] == "the receiver answered HTTP 500"
    times = [a["attempted_at"] for a in webhook["attempts"]]
    gaps = [(datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() for a, b in zip(times, times[1:])]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # doubling backoff
    assert len({h["x-primscene-delivery"] for h, _ in receiver.received}) == 1  # the same delivery, tried again


async def test_delivery_is_given_up_after_the_last_attempt_and_redirects_are_not_followed(
    client: httpx.AsyncClient, users: Users, receiver: Receiver
) -> None:
    receiver.plan = [307] * MAX_ATTEMPTS  # each points at a cloud metadata address
    task = (await _submit_with_callback(client, users.alice, f"{receiver.url}/hook")).json()
    webhook = await _webhook_when(client, users.alice, task["id"], {"delivered", "failed"})
    assert webhook["state"] == "failed" and len(webhook["attempts"]) == MAX_ATTEMPTS
    assert {a["status_code"] for a in webhook["attempts"]} == {307}
    assert len(receiver.received) == MAX_ATTEMPTS  # and nothing else was called


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://169.254.169.254/latest/meta-data/", "not allowed"),
        ("http://localhost:5432/", "not allowed"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://user:pw@{host}/hook", "user name or password"),
        ("not a url", "http:// or https://"),
    ],
)
async def test_callbacks_outside_the_allow_list_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, users: Users, receiver: Receiver, engine: AsyncEngine, url: str, reason: str
) -> None:
    response = await _submit_with_callback(client, users.alice, url.format(host=receiver.url.removeprefix("http://")))
    assert response.status_code == 422 and reason in response.json()["detail"]
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(Task)) == 0


async def test_without_an_allow_list_webhooks_are_off(
    client: httpx.AsyncClient, users: Users, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings.webhooks, "webhook_allowed_hosts", "")  # the file's other tests keep theirs
    response = await _submit_with_callback(client, users.alice, "https://example.com/hook")
    assert response.status_code == 422 and "not enabled" in response.json()["detail"]
    plain = (await submit(client, users.alice, rectangle_image())).json()
    assert plain["callback_url"] is None and plain["webhook_state"] is None
