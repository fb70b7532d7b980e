"""Authentication and per-user isolation."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import httpx
import jwt
import pytest

from serve_app.security import TokenCodec
from serve_app.settings import Settings
from tests.support.api import API, Users, login, submit, wait_until_finished
from tests.support.databases import ADMIN_PASSWORD
from tests.support.images import rectangle_image


def _assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]


async def test_login_returns_a_bearer_token_with_expiry(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.post(f"{API}/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.auth.access_token_ttl_minutes * 60
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == body["expires_in"]


@pytest.mark.parametrize("username,password", [("admin", "wrong-password"), ("nobody", ADMIN_PASSWORD), ("admin", "")])
async def test_bad_credentials_are_401(client: httpx.AsyncClient, username: str, password: str) -> None:
    response = await client.post(f"{API}/auth/token", data={"username": username, "password": password})
    if password == "":
        assert response.status_code == 422  # the form requires a password
    else:
        _assert_401(response)
        assert response.json()["detail"] == "Incorrect username or password."


async def test_missing_expired_forged_and_unsigned_tokens_are_401(
    client: httpx.AsyncClient, users: Users, settings: Settings
) -> None:
    alice_token = users.alice["Authorization"].removeprefix("Bearer ")
    alice_id = jwt.decode(alice_token, options={"verify_signature": False})["sub"]
    expired = TokenCodec(settings.jwt_secret(), timedelta(seconds=-1)).issue(uuid.UUID(alice_id))
    forged = TokenCodec("another-secret-that-is-long-enough-to-be-used", timedelta(hours=1)).issue(uuid.UUID(alice_id))
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    unsigned = f"{header}.{alice_token.split('.')[1]}."
    tampered = alice_token[:-2] + ("AA" if not alice_token.endswith("AA") else "BB")
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic YWxpY2U6cHc="}):
        _assert_401(await client.get(f"{API}/tasks", headers=headers))
    for token in (expired, forged, unsigned, tampered, "garbage"):
        _assert_401(await client.get(f"{API}/tasks", headers={"Authorization": f"Bearer {token}"}))


async def test_every_task_route_needs_a_token(client: httpx.AsyncClient) -> None:
    some_id = uuid.uuid4()
    requests = [
        ("POST", f"{API}/tasks"),
        ("GET", f"{API}/tasks"),
        ("GET", f"{API}/tasks/{some_id}"),
        ("GET", f"{API}/tasks/{some_id}/input"),
        ("GET", f"{API}/tasks/{some_id}/result"),
        ("DELETE", f"{API}/tasks/{some_id}"),
        ("GET", f"{API}/models"),
        ("POST", f"{API}/models/any/predict"),
        ("POST", f"{API}/users"),
    ]
    for method, url in requests:
        _assert_401(await client.request(method, url))


async def test_other_users_task_is_404_like_a_missing_one(client: httpx.AsyncClient, users: Users) -> None:
    task = (await submit(client, users.alice, rectangle_image())).json()
    await wait_until_finished(client, users.alice, task["id"])
    missing = uuid.uuid4()
    for suffix in ("", "/input", "/result"):
        theirs = await client.get(f"{API}/tasks/{task['id']}{suffix}", headers=users.bob)
        nobody = await client.get(f"{API}/tasks/{missing}{suffix}", headers=users.bob)
        assert theirs.status_code == nobody.status_code == 404
        assert theirs.json() == nobody.json() == {"detail": "Task not found"}
    assert (await client.delete(f"{API}/tasks/{task['id']}", headers=users.bob)).status_code == 404
    assert (await client.get(f"{API}/tasks", headers=users.bob)).json()["total"] == 0
    # Alice still has her task, untouched by Bob's attempts.
    assert (await client.get(f"{API}/tasks/{task['id']}/result", headers=users.alice)).status_code == 200


async def test_only_admins_create_users(client: httpx.AsyncClient, users: Users) -> None:
    body = {"username": "carol", "password": "carol-password-1"}
    forbidden = await client.post(f"{API}/users", json=body, headers=users.alice)
    assert forbidden.status_code == 403
    created = await client.post(f"{API}/users", json=body, headers=users.admin)
    assert created.status_code == 201
    assert created.json()["username"] == "carol" and created.json()["is_admin"] is False
    assert "password" not in created.text
    assert (await client.post(f"{API}/users", json=body, headers=users.admin)).status_code == 409
    await login(client, "carol", "carol-password-1")


@pytest.mark.parametrize(
    "body",
    [
        {"username": "dave", "password": "short"},
        {"username": "dave-the-user", "password": "DAVE-THE-USER"},
        {"username": "x", "password": "long-enough-password"},
        {"username": "bad name!", "password": "long-enough-password"},
        {"username": "dave", "password": "p" * 129},
    ],
)
async def test_weak_passwords_and_bad_usernames_are_422(client: httpx.AsyncClient, users: Users, body: dict) -> None:
    response = await client.post(f"{API}/users", json=body, headers=users.admin)
    assert response.status_code == 422
    assert response.json()["detail"]


async def test_token_of_a_deleted_user_is_401(client: httpx.AsyncClient, users: Users, sessions) -> None:
    from sqlalchemy import delete

    from db.models import User

    async with sessions() as session:
        await session.execute(delete(User).where(User.username == "bob"))
        await session.commit()
    _assert_401(await client.get(f"{API}/tasks", headers=users.bob))
