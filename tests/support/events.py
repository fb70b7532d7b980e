"""Reading Server-Sent Events (the `…/events` streams) as a client does."""

from __future__ import annotations

import asyncio
import json

import httpx


class EventStream:
    """Reads Server-Sent Events from a streaming response, a few at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def read(self, count: int | None = None, timeout_s: float = 20) -> list[tuple[str, dict]]:
        """The next `count` (event, data) pairs, or all until the stream ends."""
        return await self.read_until(lambda *_: False, count=count, timeout_s=timeout_s)

    async def read_until(self, last, *, count: int | None = None, timeout_s: float = 20) -> list[tuple[str, dict]]:
        """Events up to the first for which `last(event, data)` is true (or `count` of them)."""
        events: list[tuple[str, dict]] = []

        async def collect() -> None:
            name, data = None, []
            async for line in self._lines:
                if line.startswith("event:"):
                    name = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    data.append(line.removeprefix("data:").strip())
                elif line == "" and data:
                    events.append((name or "message", json.loads("\n".join(data))))
                    name, data = None, []
                    if len(events) == count or last(*events[-1]):
                        return

        await asyncio.wait_for(collect(), timeout_s)
        return events
