"""The `image` form field shared by the upload routes, read and validated off the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import File, UploadFile
from starlette.concurrency import run_in_threadpool

from db.queue import NewInput
from serve_app.settings import LimitsSettings
from serve_app.uploads import ALLOWED_FORMATS, ALLOWED_NAMES, validate_image

ImageField = Annotated[UploadFile, File(description=f"A {ALLOWED_NAMES} image.")]
# Parts are read as files whether or not they name a filename (RFC 7578 only asks that they
# should): Starlette hands a nameless part over as text, which is refused for that image alone
# (see `read_batch_part`), so the field takes both.
ImagesField = Annotated[list[UploadFile | str], File(description=f"{ALLOWED_NAMES} images, one part each, all named `images`.")]
IMAGES_PART_OPENAPI = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": f"{ALLOWED_NAMES} images, one file part each, all named `images`.",
                        },
                        "callback_url": {"type": "string", "format": "uri", "maxLength": 2048},
                    },
                },
                "encoding": {"images": {"contentType": ", ".join(ALLOWED_FORMATS.values())}},
            }
        }
    }
}

# OpenAPI of an upload route: the media types the `image` part may carry. Only documentation:
# the format is sniffed from the bytes, the part's own Content-Type is not trusted.
IMAGE_PART_OPENAPI = {
    "requestBody": {
        "content": {"multipart/form-data": {"encoding": {"image": {"contentType": ", ".join(ALLOWED_FORMATS.values())}}}}
    }
}


def part_problem(part: UploadFile | str) -> str | None:
    """Why a batch part cannot be an image, before reading it: a part without a filename."""
    if isinstance(part, str):
        return "This part has no filename, so it was read as text: send each image as a file part (with a filename)."
    return None


async def read_upload(image: UploadFile, limits: LimitsSettings) -> NewInput:
    # One byte past the limit is enough to know the file is too large.
    data = await image.read(limits.max_upload_bytes + 1)
    return await run_in_threadpool(
        validate_image, data, max_bytes=limits.max_upload_bytes, max_pixels=limits.max_image_pixels
    )
