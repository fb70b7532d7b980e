"""Uploads are checked before anything is stored; each refusal names the problem."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image
from sqlalchemy import func, select

from db.models import Task, TaskInput
from serve_app.api import create_app
from tests.support.api import API, Users, login, submit, submit_with_urllib
from tests.support.databases import make_settings
from tests.support.images import encode, rectangle_image
from tests.support.live_server import live_server
from tests.support.pipeline import BoundingBoxCatalog, BoundingBoxPipeline


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width × height but carries (almost) no pixel data: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


NOISE = Image.effect_noise((300, 300), 64).convert("RGB")

REFUSED = {
    "empty file": (b"", 422, "empty"),
    "plain text": (b"hello, I am not an image", 415, "Unsupported file type"),
    "PDF": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", 415, "Unsupported file type"),
    "GIF (not allowed)": (encode(Image.new("RGB", (10, 10)), "GIF"), 415, "Unsupported file type"),
    "TIFF (not allowed)": (encode(Image.new("RGB", (10, 10)), "TIFF"), 415, "Unsupported file type"),
    "truncated JPEG": (_truncated(encode(NOISE, "JPEG")), 422, "truncated or corrupt"),
    "truncated PNG": (_truncated(encode(NOISE, "PNG")), 422, "truncated or corrupt"),
    "JPEG magic, garbage after": (b"\xff\xd8\xff" + b"\x00" * 64, 422, "could not be decoded"),
    "PNG bomb header": (png_header_only(30000, 30000), 413, "pixels"),
    "PNG over the pixel limit": (png_header_only(8000, 6000), 413, "pixels"),
}


async def _stored_counts(sessions) -> tuple[int, int]:
    async with sessions() as session:
        tasks = await session.scalar(select(func.count()).select_from(Task))
        inputs = await session.scalar(select(func.count()).select_from(TaskInput))
    return tasks, inputs


@pytest.mark.parametrize("name", REFUSED)
async def test_bad_upload_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, users: Users, sessions, name: str
) -> None:
    data, status, message = REFUSED[name]
    response = await submit(client, users.alice, data)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert await _stored_counts(sessions) == (0, 0)


@pytest.mark.parametrize("fmt,content_type", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("BMP", "image/bmp")])
async def test_allowed_formats_are_accepted_whatever_the_client_claims(
    client: httpx.AsyncClient, users: Users, fmt: str, content_type: str
) -> None:
    data = rectangle_image(fmt=fmt)
    response = await client.post(
        f"{API}/tasks", files={"image": ("photo.txt", data, "text/plain")}, headers=users.alice
    )
    assert response.status_code == 202, response.text
    stored = await client.get(f"{API}/tasks/{response.json()['id']}/input", headers=users.alice)
    assert stored.headers["content-type"] == content_type
    assert stored.content == data


async def test_missing_image_field_is_422(client: httpx.AsyncClient, users: Users) -> None:
    response = await client.post(f"{API}/tasks", files={"picture": ("a.png", rectangle_image(), "image/png")}, headers=users.alice)
    assert response.status_code == 422


async def test_size_limit_is_413_and_configurable(database_url: str, tmp_path: Path, sessions) -> None:
    settings = make_settings(database_url, tmp_path, max_upload_bytes=50_000)
    app = create_app(settings, models=BoundingBoxCatalog(), pipeline=BoundingBoxPipeline())
    small = encode(Image.new("RGB", (50, 50), "white"), "PNG")
    big = encode(NOISE, "BMP")  # 270 kB
    assert len(big) > 50_000 + 64 * 1024
    medium = encode(Image.effect_noise((120, 120), 64).convert("RGB"), "BMP")  # 43 kB: under the body limit
    async with LifespanManager(app) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http:
            headers = await login(http, "admin", settings.auth.admin_password.get_secret_value())
            for data in (big, encode(Image.effect_noise((140, 140), 64).convert("RGB"), "BMP")):
                response = await submit(http, headers, data)
                assert response.status_code == 413, response.text
                assert "50000 bytes" in response.json()["detail"]
            assert await _stored_counts(sessions) == (0, 0)
            assert (await submit(http, headers, small)).status_code == 202
            assert len(medium) < 50_000 and (await submit(http, headers, medium)).status_code == 202


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)  # refused before any database work
def test_an_oversized_upload_from_urllib_reads_the_413(app, settings) -> None:
    """urllib sends the whole body before it reads the answer: the server reads and drops it
    first, instead of resetting the connection (serve_app/body_limit.py)."""
    with live_server(app) as url:
        status, detail = submit_with_urllib(url, settings.limits.max_upload_bytes + 2_000_000)
    assert status == 413 and f"at most {settings.limits.max_upload_bytes} bytes" in detail


async def test_exif_rotated_photo_reports_upright_size(client: httpx.AsyncClient, users: Users) -> None:
    image = Image.new("RGB", (120, 40), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displayed turned a quarter clockwise
    data = encode(image, "JPEG", exif=exif.tobytes())
    task = (await submit(client, users.alice, data)).json()
    from tests.support.api import wait_until_finished

    await wait_until_finished(client, users.alice, task["id"])
    result = (await client.get(f"{API}/tasks/{task['id']}/result", headers=users.alice)).json()
    assert result["image"] == {"width": 40, "height": 120}


async def test_streamed_upload_without_length_is_cut_off_at_the_limit(
    database_url: str, tmp_path: Path, sessions
) -> None:
    settings = make_settings(database_url, tmp_path, max_upload_bytes=50_000)
    app = create_app(settings, models=BoundingBoxCatalog())
    sent = 0

    async def endless_body():
        nonlocal sent
        boundary_start = b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x\"\r\n\r\n"
        yield boundary_start
        for _ in range(1000):  # would be 16 MB if read to the end
            sent += 16 * 1024
            yield b"\0" * (16 * 1024)

    async with LifespanManager(app) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http:
            headers = await login(http, "admin", settings.auth.admin_password.get_secret_value())
            response = await http.post(
                f"{API}/tasks",
                content=endless_body(),
                headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
            )
    assert response.status_code == 413
    assert "50000 bytes" in response.json()["detail"]
    assert sent < 1_000_000  # stopped early, not after 16 MB
    assert await _stored_counts(sessions) == (0, 0)
