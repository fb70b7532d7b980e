"""Every task route × every kind of caller: the owner works, another user gets 404 exactly as
for a missing task, and everyone without a valid token gets 401.

The routes come from the app's own OpenAPI, so a new task route is checked without editing
this file."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
import jwt
import pytest

from serve_app.security import TokenCodec
from serve_app.settings import Settings
from tests.support.api import API, Users, submit, wait_until_finished
from tests.support.images import rectangle_image

TASK_PATH = f"{API}/tasks/{{task_id}}"


def _expired(token: str, settings: Settings) -> str:
    return TokenCodec(settings.jwt_secret(), timedelta(seconds=-1)).issue(_subject(token))


def _forged(token: str, settings: Settings) -> str:
    return TokenCodec("a-different-key-of-the-same-length-as-ours!", timedelta(hours=1)).issue(_subject(token))


def _unsigned(token: str, settings: Settings) -> str:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    return f"{header}.{token.split('.')[1]}."


def _subject(token: str) -> uuid.UUID:
    return uuid.UUID(jwt.decode(token, options={"verify_signature": False})["sub"])


# A caller who must be turned away with 401, made from the owner's valid token.
BAD_TOKENS: dict[str, Callable[[str, Settings], str] | None] = {
    "no token": None,
    "expired token": _expired,
    "forged signature": _forged,
    "alg=none": _unsigned,
}


async def _task_routes(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """(method, path template) of every route about one task; DELETE last, since it ends the task."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    routes = [(method.upper(), path) for path, ops in paths.items() if path.startswith(TASK_PATH) for method in ops]
    assert {("GET", TASK_PATH), ("DELETE", TASK_PATH)} <= set(routes)
    return sorted(routes, key=lambda route: route[0] == "DELETE")


async def _finished_task(client: httpx.AsyncClient, owner: dict[str, str]) -> str:
    task = (await submit(client, owner, rectangle_image())).json()
    await wait_until_finished(client, owner, task["id"])
    return task["id"]


async def test_owner_can_use_every_task_route(client: httpx.AsyncClient, users: Users) -> None:
    task_id = await _finished_task(client, users.alice)
    for method, path in await _task_routes(client):
        response = await client.request(method, path.format(task_id=task_id), headers=users.alice)
        assert response.status_code in (200, 204), (method, path, response.text)


async def test_other_user_gets_404_like_a_missing_task_on_every_route(client: httpx.AsyncClient, users: Users) -> None:
    task_id = await _finished_task(client, users.alice)
    missing = str(uuid.uuid4())
    for method, path in await _task_routes(client):
        theirs = await client.request(method, path.format(task_id=task_id), headers=users.bob)
        nothing = await client.request(method, path.format(task_id=missing), headers=users.bob)
        assert theirs.status_code == nothing.status_code == 404, (method, path)
        assert theirs.json() == nothing.json()
    listed = (await client.get(f"{API}/tasks", headers=users.bob)).json()
    assert task_id not in [task["id"] for task in listed["items"]]
    # Nothing Bob did touched Alice's task.
    assert (await client.get(TASK_PATH.format(task_id=task_id), headers=users.alice)).json()["status"] == "succeeded"


@pytest.mark.parametrize("caller", BAD_TOKENS)
async def test_invalid_callers_get_401_on_every_route(
    client: httpx.AsyncClient, users: Users, settings: Settings, caller: str
) -> None:
    task_id = await _finished_task(client, users.alice)
    make = BAD_TOKENS[caller]
    alice_token = users.alice["Authorization"].removeprefix("Bearer ")
    headers = {} if make is None else {"Authorization": f"Bearer {make(alice_token, settings)}"}
    routes = await _task_routes(client) + [("GET", f"{API}/tasks"), ("POST", f"{API}/tasks")]
    for method, path in routes:
        if method == "POST":
            response = await client.post(path, files={"image": ("x.png", rectangle_image(), "image/png")}, headers=headers)
        else:
            response = await client.request(method, path.format(task_id=task_id), headers=headers)
        assert response.status_code == 401, (caller, method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    # The task is still there and Alice has no new ones.
    tasks = (await client.get(f"{API}/tasks", headers=users.alice)).json()
    assert [task["id"] for task in tasks["items"]] == [task_id]
