"""One bad image must not fail the other requests that `@serve.batch` grouped with it.

A batch method returns, per request, either its prediction or the `ImageRejected` for its own
image (Serve hands each request its own list entry); the public method raises that rejection
for that one caller only."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from PIL import Image

from deployments.contract import ImageRejected
from deployments.images import ImageInput, to_rgb

Result = TypeVar("Result")


def predict_decodable(
    images: list[ImageInput], predict: Callable[[list[Image.Image], list[int]], list[Result]], *, at_least: int | None = None
) -> list[Result | ImageRejected]:
    """Decode each image on its own (JPEGs at a reduced scale down to `at_least` pixels, see
    `to_rgb`); run `predict(pictures, positions)` on those that decode and put each result back
    in its place, the rejection where an image did not decode."""
    decoded: list[Image.Image | ImageRejected] = []
    for image in images:
        try:
            decoded.append(to_rgb(image, at_least=at_least))
        except ImageRejected as exc:
            decoded.append(exc)
    pictures = [(i, picture) for i, picture in enumerate(decoded) if not isinstance(picture, ImageRejected)]
    positions = [i for i, _ in pictures]
    results = iter(predict([picture for _, picture in pictures], positions) if positions else [])
    return [picture if isinstance(picture, ImageRejected) else next(results) for picture in decoded]


def one_outcome(outcome: Result | ImageRejected) -> Result:
    if isinstance(outcome, ImageRejected):
        raise outcome
    return outcome
