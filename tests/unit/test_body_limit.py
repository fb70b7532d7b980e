"""The body limit's refusal of a body declared too large: read and dropped first only within its
bounds, never for a client that waits for `100 Continue` (serve_app/body_limit.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.types import Message

from serve_app import body_limit
from serve_app.body_limit import DISCARD_BYTES, BodySizeLimit

LIMIT = 1000


async def refuse(declared: int, chunks: int, expect: str | None = None, pause_s: float = 0) -> tuple[int, int, dict]:
    """Send a request that declares `declared` bytes and has `chunks` chunks ready; returns
    (chunks the middleware read, status, body)."""
    read, sent = 0, []

    async def receive() -> Message:
        nonlocal read
        await asyncio.sleep(pause_s)
        read += 1
        return {"type": "http.request", "body": b"x" * 100, "more_body": read < chunks}

    async def send(message: Message) -> None:
        sent.append(message)

    async def app(scope, receive, send) -> None:
        raise AssertionError("the app behind the limit must not be called")

    headers = [(b"content-length", str(declared).encode())] + ([(b"expect", expect.encode())] if expect else [])
    scope = {"type": "http", "method": "POST", "path": "/api/v1/tasks", "headers": headers}
    await BodySizeLimit(app, max_bytes=LIMIT, detail="too large")(scope, receive, send)
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return read, start["status"], json.loads(body)


@pytest.mark.parametrize(
    "declared, expect, chunks_read",
    [
        (5000, None, 50),  # read to its end, then refused: the client reads the 413
        (DISCARD_BYTES + 1, None, 0),  # too large to read: refused at once
        (5000, "100-continue", 0),  # the client has sent nothing and waits: refused at once
    ],
    ids=["over the limit", "over the discard bound", "expect 100-continue"],
)
async def test_a_body_declared_too_large_is_read_only_within_bounds(declared: int, expect: str | None, chunks_read: int) -> None:
    read, status, body = await refuse(declared, chunks=50, expect=expect)
    assert (read, status, body) == (chunks_read, 413, {"detail": "too large"})


async def test_a_slow_body_is_read_no_longer_than_the_time_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_limit, "DISCARD_S", 0.2)
    read, status, _ = await refuse(5000, chunks=50, pause_s=0.02)  # 1 s to send it all
    assert status == 413 and 3 <= read < 20
