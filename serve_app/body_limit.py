"""Refuses request bodies over a byte limit while they stream in, with the API's JSON 413.

Content-Length may be absent (chunked uploads) or wrong, so the bytes are counted as they are
received and the request is stopped as soon as it passes the limit: an oversized or slow upload
never sits in memory whole. (FastAPI's own `max_body_size` answers in plain text.)

A body declared too large is refused before it is read, but some clients send the whole body
before they read any answer (Python's urllib): had the server closed the connection with their
bytes unread, the kernel would reset it and they would see "connection reset by peer" instead of
the 413. So such a body is read and thrown away first, up to DISCARD_BYTES and DISCARD_S; a larger
or slower one is answered at once. Clients that ask `Expect: 100-continue` (curl) have sent no
body yet: they get the 413 at once, and send nothing.
"""

from __future__ import annotations

import anyio
from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DISCARD_BYTES = 64 * 2**20
DISCARD_S = 10.0


async def discard_body(receive: Receive, declared: int) -> None:
    """Read and drop a request body of `declared` bytes, within DISCARD_BYTES and DISCARD_S."""
    if declared > DISCARD_BYTES:
        return
    with anyio.move_on_after(DISCARD_S):
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return


class BodySizeLimit:
    """`max_bytes` for every path, except those in `per_path` (path → (limit, detail)), such as
    the batch submit, which carries many images."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, detail: str, per_path: dict[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = detail
        self.per_path = per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes, detail = self.per_path.get(scope["path"], (self.max_bytes, self.detail))
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            if headers.get("expect", "").lower() != "100-continue":
                await discard_body(receive, int(declared))
            response = JSONResponse({"detail": detail}, status_code=status.HTTP_413_CONTENT_TOO_LARGE)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # Raised inside the route's body parsing; the app's handler turns it into JSON.
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=detail)
            return message

        await self.app(scope, counting_receive, send)
