"""Helpers that talk to the API the way a client would."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

API = "/api/v1"


@dataclass
class Users:
    """Authorization headers of the first admin and two ordinary users (the `users` fixture)."""

    admin: dict[str, str]
    alice: dict[str, str]
    bob: dict[str, str]


async def login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    response = await client.post(f"{API}/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def create_user(client: httpx.AsyncClient, admin: dict[str, str], username: str, password: str) -> dict[str, str]:
    response = await client.post(f"{API}/users", json={"username": username, "password": password}, headers=admin)
    assert response.status_code == 201, response.text
    return await login(client, username, password)


async def submit(client: httpx.AsyncClient, headers: dict[str, str], image: bytes, **extra_headers: str) -> httpx.Response:
    return await client.post(
        f"{API}/tasks", files={"image": ("upload.bin", image, "application/octet-stream")}, headers={**headers, **extra_headers}
    )


async def wait_until_finished(client: httpx.AsyncClient, headers: dict[str, str], task_id: str, timeout_s: float = 20) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        task = (await client.get(f"{API}/tasks/{task_id}", headers=headers)).json()
        if task["status"] in ("succeeded", "failed"):
            return task
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} did not finish within {timeout_s} s: {task}")


def submit_with_urllib(base_url: str, image_bytes: int) -> tuple[int, str]:
    """POST an upload of `image_bytes` to `/tasks` as Python's urllib sends it: Content-Length,
    the whole body, and only then the answer; returns (status, detail). Without a token: the
    body limit answers before authentication."""
    import json
    import urllib.error
    import urllib.request

    head = b'--b\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
    body = head + b"\0" * image_bytes + b"\r\n--b--\r\n"
    request = urllib.request.Request(
        f"{base_url}{API}/tasks", data=body, method="POST", headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()).get("detail", "")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())["detail"]
