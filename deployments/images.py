"""Decoding uploads for the models: EXIF orientation applied, RGB, decoded once."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deployments.contract import ImageRejected

ImageInput = bytes | np.ndarray | Image.Image
# A plain grey picture to run once when a model loads.
WARM_UP_IMAGE = np.full((64, 64, 3), 127, dtype=np.uint8)


def to_rgb(image: ImageInput, at_least: int | None = None) -> Image.Image:
    """An upright RGB image from encoded bytes, an HWC uint8 RGB array or a PIL image.
    Raises ImageRejected when the bytes are not a decodable image.

    With `at_least`, a JPEG may be decoded at a reduced scale (1/2, 1/4 or 1/8, in the JPEG
    decoder itself) as long as both sides stay at least `at_least` pixels: for a model whose
    input is much smaller than the upload, that skips most of the decoding work."""
    if isinstance(image, bytes):
        try:
            with Image.open(io.BytesIO(image)) as opened:
                if at_least is not None and opened.format == "JPEG":
                    opened.draft("RGB", (at_least, at_least))
                opened.load()
                # In place: the image is ours, and a copy of every upright upload costs a
                # full-size memory pass for nothing.
                ImageOps.exif_transpose(opened, in_place=True)
                return _rgb(opened)
        except UnidentifiedImageError as exc:  # its own text names a Python object, not the problem
            raise ImageRejected("cannot decode the image: the bytes are not in a known image format") from exc
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            # A bomb is refused at upload; should one reach a replica anyway, it is an image the
            # model cannot process (fail the task at once), not a transient error to retry.
            raise ImageRejected(f"cannot decode the image: {exc}") from exc
    if isinstance(image, np.ndarray):
        return Image.fromarray(image).convert("RGB")
    return _rgb(image)


def _rgb(image: Image.Image) -> Image.Image:
    # Pillow's convert("RGB") clips 16-bit greyscale (16-bit PNGs open as "I;16") at 255, so
    # any ordinary 16-bit picture turns all white and the models see nothing: keep the top
    # 8 bits instead.
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
    if image.mode == "RGB":  # convert() would copy it; nothing here changes an image in place
        return image
    return image.convert("RGB")
