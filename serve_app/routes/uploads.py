"""The `image` form field shared by the upload routes, read and validated off the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import File, UploadFile
from starlette.concurrency import run_in_threadpool

from db.queue import NewInput
from serve_app.settings import LimitsSettings
from serve_app.uploads import ALLOWED_FORMATS, ALLOWED_NAMES, validate_image

ImageField = Annotated[UploadFile, File(description=f"A {ALLOWED_NAMES} image.")]
ImagesField = Annotated[list[UploadFile], File(description=f"{ALLOWED_NAMES} images, one part each, all named `images`.")]

# OpenAPI of an upload route: the media types the `image` part may carry. Only documentation:
# the format is sniffed from the bytes, the part's own Content-Type is not trusted.
IMAGE_PART_OPENAPI = {
    "requestBody": {
        "content": {"multipart/form-data": {"encoding": {"image": {"contentType": ", ".join(ALLOWED_FORMATS.values())}}}}
    }
}


async def read_upload(image: UploadFile, limits: LimitsSettings) -> NewInput:
    # One byte past the limit is enough to know the file is too large.
    data = await image.read(limits.max_upload_bytes + 1)
    return await run_in_threadpool(
        validate_image, data, max_bytes=limits.max_upload_bytes, max_pixels=limits.max_image_pixels
    )
