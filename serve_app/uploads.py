"""Checks an upload before anything is stored: size, format sniffed from the bytes, pixel count,
and a full decode. The client's filename and Content-Type are never trusted."""

from __future__ import annotations

import hashlib
import io
import warnings

from PIL import Image, UnidentifiedImageError

from db.queue import NewInput

# Pillow format name → the content type we store and serve back.
ALLOWED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp"}
ALLOWED_NAMES = "JPEG, PNG, WebP or BMP"
# EXIF orientations 5–8 turn the picture a quarter, so its upright size has width and height swapped.
_QUARTER_TURN_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


class UploadRejected(Exception):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def sniff_format(data: bytes) -> str | None:
    """The allowed format these bytes start with, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith(b"BM"):
        return "BMP"
    return None


def validate_image(data: bytes, *, max_bytes: int, max_pixels: int) -> NewInput:
    """Return the upload ready to store, or raise UploadRejected with the status and the reason.

    413 too many bytes or pixels; 415 not an allowed format; 422 empty, corrupt or truncated.
    Blocking (it decodes the whole image): run it in a worker thread.
    """
    if len(data) > max_bytes:
        raise UploadRejected(413, f"The image is {len(data)} bytes; the limit is {max_bytes} bytes.")
    if not data:
        raise UploadRejected(422, "The uploaded file is empty.")
    fmt = sniff_format(data)
    if fmt is None:
        raise UploadRejected(415, f"Unsupported file type: send a {ALLOWED_NAMES} image.")
    with warnings.catch_warnings():
        # Pillow only warns below twice its own pixel limit; treat that as a refusal too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[fmt])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise UploadRejected(413, f"The image has too many pixels: {exc}") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UploadRejected(422, f"The {fmt} image could not be decoded: its header is corrupt.") from exc
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise UploadRejected(
                    413, f"The image is {width}×{height} = {width * height} pixels; the limit is {max_pixels} pixels."
                )
            if width == 0 or height == 0:
                raise UploadRejected(422, f"The image has no pixels ({width}×{height}).")
            if fmt == "JPEG":
                # Decode at 1/8 scale: every byte of the entropy-coded data is still read (a
                # truncated or corrupt file still fails), at a fraction of a full decode's cost.
                image.draft(None, (1, 1))
            try:
                image.load()
                orientation = image.getexif().get(_EXIF_ORIENTATION)
            except Exception as exc:  # Pillow raises many types for broken data; all mean "cannot decode"
                raise UploadRejected(422, f"The {fmt} image is truncated or corrupt and could not be decoded.") from exc
    if orientation in _QUARTER_TURN_ORIENTATIONS:
        width, height = height, width
    return NewInput(
        data=data,
        content_type=ALLOWED_FORMATS[fmt],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )
