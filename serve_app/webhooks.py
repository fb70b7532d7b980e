"""Webhooks: checking callback URLs against the allow-list, and a sender that POSTs each
finished task's outcome, signed, retried with a doubling backoff (runs in every ingress replica,
like the housekeeping job; `db.webhooks` keeps two senders from posting the same task at once).

The receiver can check a delivery with the user's secret (`GET /api/v1/users/me/webhook-secret`):
    X-Primscene-Signature: sha256=<hex of HMAC-SHA256(secret, "<X-Primscene-Timestamp>." + body)>
The timestamp (Unix seconds) is signed too, so an old delivery cannot be replayed as new."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from urllib.parse import urlsplit

import httpx

from db import webhooks
from db.engine import SessionFactory
from db.models import Task, User
from db.types import utcnow
from serve_app.results import task_result
from serve_app.schemas import TaskPublic
from serve_app.settings import WebhookSettings
from serve_app.task_log import TaskLog

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
MAX_ERROR_CHARS = 300
CLAIM_BATCH = 16
DEFAULT_PORTS = {"http": 80, "https": 443}


class CallbackRefused(ValueError):
    pass


def check_callback_url(url: str, allowed_hosts: set[str]) -> str:
    """The URL if a webhook may be sent there; CallbackRefused saying why otherwise. Only hosts
    on the allow-list are reachable, so a user cannot make the service call internal addresses."""
    if not allowed_hosts:
        raise CallbackRefused("Webhooks are not enabled on this service (PRIMSCENE_WEBHOOK_ALLOWED_HOSTS is empty).")
    if len(url) > MAX_URL_LENGTH:
        raise CallbackRefused(f"callback_url is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackRefused(f"callback_url is not a valid URL: {exc}.") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise CallbackRefused("callback_url must be an absolute http:// or https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback_url must not carry a user name or password.")
    host = parts.hostname.lower()
    if host not in allowed_hosts and f"{host}:{port or DEFAULT_PORTS[parts.scheme]}" not in allowed_hosts:
        raise CallbackRefused(f"callback_url host {host!r} is not allowed; allowed: {', '.join(sorted(allowed_hosts))}.")
    return url


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(self, sessions: SessionFactory, settings: WebhookSettings) -> None:
        self._sessions = sessions
        self._settings = settings
        # Redirects are not followed: they could lead off the allow-list.
        self._http = httpx.AsyncClient(timeout=settings.webhook_timeout_s, follow_redirects=False)
        self._loop_task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Deliver the webhooks due now; how many were tried."""
        lease = timedelta(seconds=2 * self._settings.webhook_timeout_s + 5)
        async with self._sessions() as session:
            due = await webhooks.claim_due(session, limit=CLAIM_BATCH, lease=lease)
        await asyncio.gather(*(self._deliver(task) for task in due))
        return len(due)

    async def _deliver(self, task: Task) -> None:
        async with self._sessions() as session:
            owner = await session.get(User, task.owner_id)
            if owner is None:  # deleted since the claim, and the task with it (cascade)
                return
            result = await task_result(session, task)
            secret = await webhooks.secret_for(session, owner)
            tried = len(await webhooks.attempts(session, task.id))
        body = json.dumps({
            "event": "task.finished",
            "task": TaskPublic.model_validate(task).model_dump(mode="json"),
            "result": result.model_dump(mode="json") if result else None,
        }).encode()
        status_code, error = await self._post(task, secret, body)
        attempt = tried + 1
        retry_at = None
        if error is not None and attempt < self._settings.webhook_max_attempts:
            retry_at = utcnow() + timedelta(seconds=self._settings.webhook_retry_backoff_s * 2 ** (attempt - 1))
        async with self._sessions() as session:
            await webhooks.record(session, task.id, status_code=status_code, error=error, retry_at=retry_at)
        TaskLog(task.id, task.owner_id).info("webhook attempt %d: %s", attempt, error or f"delivered ({status_code})")

    async def _post(self, task: Task, secret: str, body: bytes) -> tuple[int | None, str | None]:
        """(status, None) when delivered; (status or None, why not) otherwise."""
        url = task.callback_url or ""
        try:
            check_callback_url(url, self._settings.allowed_hosts())  # the list may have changed
        except CallbackRefused as exc:
            return None, str(exc)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Primscene-Webhook/1",
            "X-Primscene-Event": "task.finished",
            "X-Primscene-Delivery": str(task.id),
            "X-Primscene-Timestamp": str(timestamp),
            "X-Primscene-Signature": signature(secret, timestamp, body),
        }
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS] or type(exc).__name__
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"the receiver answered HTTP {response.status_code}"

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        await self._http.aclose()

    async def _run(self) -> None:
        while True:
            try:
                if await self.run_once():
                    continue  # more may be due
            except Exception as exc:  # e.g. the database is down: the next round tries again
                log.warning("webhook delivery round failed (%s)", type(exc).__name__)
            await asyncio.sleep(self._settings.webhook_poll_interval_s)
