"""The hostile-upload corpus (scripts/hostile_images.py) at a given set of limits, built once, and
how near a found shape must be to where it was drawn."""

from __future__ import annotations

import math
from functools import cache

from scripts.hostile_images import Hostile, corpus
from serve_app.settings import LimitsSettings

# How far (as a fraction of the picture) a found shape's centre may be from where it was drawn.
SHAPE_TOLERANCE = 0.04


@cache
def _hostile(max_upload_bytes: int, max_image_pixels: int) -> tuple[Hostile, ...]:
    return tuple(corpus(max_upload_bytes, max_image_pixels))


def corpus_for(limits: LimitsSettings) -> tuple[Hostile, ...]:
    return _hostile(limits.max_upload_bytes, limits.max_image_pixels)


def found_at(primitives: list[dict], where: tuple[float, float]) -> bool:
    return any(math.dist((p["x"], p["y"]), where) <= SHAPE_TOLERANCE for p in primitives)
