"""Health checks that can fail: each model replica runs one small picture through its model, on
the thread its model calls use, within a time budget, and expects the answer it gave at start.

A replica whose runtime hangs, raises, or answers differently (weights or runtime state gone
bad) reports itself unhealthy, and Serve replaces it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from typing import Generic, TypeVar

import numpy as np
from PIL import Image, ImageDraw

BUDGET_S = 10.0  # a one-image call takes milliseconds; a batch queued before it, well under a second


def _check_picture() -> np.ndarray:
    """A small drawing with a circle, a square and a triangle: something to find."""
    picture = Image.new("RGB", (160, 160), (240, 240, 240))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((12, 12, 72, 72), fill=(200, 40, 40))
    draw.rectangle((92, 16, 146, 70), fill=(40, 90, 200))
    draw.polygon([(20, 146), (140, 146), (80, 92)], fill=(40, 150, 60))
    return np.asarray(picture)


CHECK_PICTURE = _check_picture()  # drawn once per process, not on every health check


Answer = TypeVar("Answer")


class KnownAnswer(Generic[Answer]):
    """`run()` computes an answer; `summarise` reduces it to what must stay the same."""

    def __init__(self, what: str, run: Callable[[], Answer], summarise: Callable[[Answer], Hashable]) -> None:
        self._what, self._run, self._summarise = what, run, summarise
        self.expected = summarise(run())

    async def check(self, executor: Executor, budget_s: float = BUDGET_S) -> None:
        loop = asyncio.get_running_loop()
        try:
            answer = await asyncio.wait_for(loop.run_in_executor(executor, self._run), budget_s)
        except TimeoutError:
            raise RuntimeError(f"{self._what} did not answer its health-check picture within {budget_s:g} s") from None
        except Exception as exc:
            raise RuntimeError(f"{self._what} failed on its health-check picture: {exc!r}") from exc
        if (got := self._summarise(answer)) != self.expected:
            raise RuntimeError(f"{self._what} answered its health-check picture with {got!r}, not {self.expected!r} as at start")
