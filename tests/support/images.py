"""Images made on the spot for tests."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def rectangle_image(
    size: tuple[int, int] = (200, 100), box: tuple[int, int, int, int] = (50, 20, 150, 60), fmt: str = "PNG"
) -> bytes:
    """A white image with one filled red rectangle (left, top, right, bottom inclusive)."""
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle(box, fill="red")
    return encode(image, fmt)
