"""Decoding uploads for the models: EXIF orientation applied, RGB, decoded once."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from deployments.contract import ImageRejected

ImageInput = bytes | np.ndarray | Image.Image
# A plain grey picture to run once when a model loads.
WARM_UP_IMAGE = np.full((64, 64, 3), 127, dtype=np.uint8)


def to_rgb(image: ImageInput) -> Image.Image:
    """An upright RGB image from encoded bytes, an HWC uint8 RGB array or a PIL image.
    Raises ImageRejected when the bytes are not a decodable image."""
    if isinstance(image, bytes):
        try:
            with Image.open(io.BytesIO(image)) as opened:
                upright = ImageOps.exif_transpose(opened)
                return upright.convert("RGB")
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageRejected(f"cannot decode the image: {exc}") from exc
    if isinstance(image, np.ndarray):
        return Image.fromarray(image).convert("RGB")
    return image.convert("RGB")
