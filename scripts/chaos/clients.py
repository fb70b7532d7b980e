"""Clients that behave like careful users: every submit carries an Idempotency-Key and is retried
(same key) after a connection error, a 5xx or a 429, waiting as `Retry-After` says; then they
poll their task list until everything they got accepted has finished."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

API = "/api/v1"
TERMINAL = {"succeeded", "failed"}
MAX_WAIT_S = 2.0


@dataclass
class Drive:
    accepted: list[str] = field(default_factory=list)
    finished: list[dict] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)  # every answer a submit got: "202", "503", "ReadError"…
    submit_retries: int = 0
    unfinished: int = 0
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.answers.items() if code.startswith("5"))


async def drive(
    url: str, tokens: list[str], images: list[bytes], *, timeout_s: float = 900, poll_s: float = 1.0, result: Drive | None = None
) -> Drive:
    """Each token is one client with its share of `images`. Pass `result` to watch progress from
    another thread (e.g. which tasks were accepted before a fault)."""
    result = result or Drive()
    deadline = time.monotonic() + timeout_s
    started = time.perf_counter()

    async def client(token: str, share: list[bytes]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": token}) as http:
            pending = {task_id for image in share if (task_id := await _submit(http, image, result, deadline))}
            while pending and time.monotonic() < deadline:
                await asyncio.sleep(poll_s)
                for task in await _own_tasks(http):
                    if task["id"] in pending and task["status"] in TERMINAL:
                        pending.discard(task["id"])
                        result.finished.append(task)
            result.unfinished += len(pending)

    await asyncio.gather(*(client(token, images[i :: len(tokens)]) for i, token in enumerate(tokens)))
    result.seconds = round(time.perf_counter() - started, 1)
    return result


async def _submit(http: httpx.AsyncClient, image: bytes, result: Drive, deadline: float) -> str | None:
    key = uuid.uuid4().hex
    first = True
    while time.monotonic() < deadline:
        if not first:
            result.submit_retries += 1
        first = False
        try:
            response = await http.post(
                f"{API}/tasks", files={"image": ("image.jpg", image, "image/jpeg")}, headers={"Idempotency-Key": key}
            )
        except httpx.HTTPError as exc:
            result.answers[type(exc).__name__] += 1
            await asyncio.sleep(0.5)
            continue
        result.answers[str(response.status_code)] += 1
        if response.status_code == 202:
            task_id = response.json()["id"]
            if task_id not in result.accepted:  # a retry after a lost answer gets the same task back
                result.accepted.append(task_id)
            return task_id
        if response.status_code in (429,) or response.status_code >= 500 or _no_route(response):
            await asyncio.sleep(min(MAX_WAIT_S, float(response.headers.get("Retry-After", 0.5))))
            continue
        raise RuntimeError(f"submit refused: {response.status_code} {response.text}")
    return None


def _no_route(response: httpx.Response) -> bool:
    """Serve's proxy answers a plain-text 404 while the application is not deployed (it is being
    shut down or started); the API's own errors are JSON, and `POST /tasks` never answers 404."""
    return response.status_code == 404 and not response.headers.get("content-type", "").startswith("application/json")


async def _own_tasks(http: httpx.AsyncClient) -> list[dict]:
    """The client's tasks; an empty list while the service cannot answer (it is polled again)."""
    tasks, cursor = [], None
    while True:
        try:
            response = await http.get(f"{API}/tasks", params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        except httpx.HTTPError:
            return tasks
        if response.status_code != 200:
            return tasks
        page = response.json()
        tasks += page["items"]
        if (cursor := page["next"]) is None:
            return tasks


async def create_users(url: str, admin_password: str, count: int, *, prefix: str) -> list[str]:
    """`count` users made by the administrator through the API; their bearer tokens."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        admin = await login(http, "admin", admin_password)
        tokens = []
        for i in range(count):
            name, password = f"{prefix}-{i:03d}", f"{prefix}-password-{i:03d}"
            response = await http.post(f"{API}/users", json={"username": name, "password": password}, headers={"Authorization": admin})
            if response.status_code not in (201, 409):
                response.raise_for_status()
            tokens.append(await login(http, name, password))
        return tokens


async def login(http: httpx.AsyncClient, username: str, password: str) -> str:
    response = await http.post(f"{API}/auth/token", data={"username": username, "password": password})
    response.raise_for_status()
    return f"Bearer {response.json()['access_token']}"


def wait_ready(url: str, timeout_s: float = 180) -> None:
    """Until the service's `/readyz` answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready within {timeout_s} s")

