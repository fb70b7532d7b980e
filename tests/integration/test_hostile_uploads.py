"""Hostile uploads (scripts/hostile_images.py): each one is either processed, upright, or refused
with a 4xx whose detail names the problem; a refusal stores nothing; and an oversized body sent
slowly is cut off at the limit without being held in memory. (What the replicas' model code makes
of the same corpus: tests/unit/test_hostile_images_in_models.py.)
"""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.hostile_images import Hostile
from serve_app.api import create_app
from serve_app.settings import LimitsSettings, Settings
from tests.support.api import API, Users, login, wait_until_finished
from tests.support.databases import make_settings
from tests.support.hostile import corpus_for, found_at
from tests.support.pipeline import BoundingBoxCatalog, BoundingBoxPipeline

# The corrupt-EXIF entries make Pillow warn while it skips the broken tags: expected here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning"),
    pytest.mark.filterwarnings("ignore:Tag data larger than file:UserWarning"),
]

async def send(client: httpx.AsyncClient, headers: dict[str, str], entry: Hostile) -> httpx.Response:
    return await client.post(f"{API}/tasks", files={"image": (entry.filename, entry.data, entry.content_type)}, headers=headers)


async def stored_rows(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        return {
            table: (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            for table in ("tasks", "task_inputs", "primitives", "scene_results")
        }


NOTHING_STORED = {"tasks": 0, "task_inputs": 0, "primitives": 0, "scene_results": 0}


def test_the_corpus_covers_what_the_issue_asks_for() -> None:
    entries = corpus_for(LimitsSettings())
    names = " | ".join(e.name for e in entries)
    for wanted in ("zero bytes", "truncated JPEG", "truncated PNG", "x.jpg", "text file", "ZIP appended", "GIF/JavaScript",
                   "PDF header", "100000×100000", "65000×65000", "BMP header", "of EXIF", "I;16", "CMYK", "palette", "RGBA",
                   "LA PNG", "animated GIF", "animated WebP", "1×1", "20000×1", "1×20000", "orientation 6", "orientation 8"):
        assert wanted in names, wanted
    assert len({e.name for e in entries}) == len(entries)
    assert {e.status for e in entries} == {202, 413, 415, 422}
    assert all(e.detail for e in entries if not e.accepted) and all(e.size and e.stored_type for e in entries if e.accepted)


async def test_refused_uploads_name_the_problem_and_store_nothing(
    client: httpx.AsyncClient, users: Users, engine: AsyncEngine, settings: Settings
) -> None:
    wrong = []
    for entry in (e for e in corpus_for(settings.limits) if not e.accepted):
        response = await send(client, users.alice, entry)
        detail = response.json().get("detail", "")
        if response.status_code != entry.status or entry.detail.lower() not in str(detail).lower():
            wrong.append(f"{entry.name}: expected {entry.status} mentioning {entry.detail!r}, got {response.status_code} {detail!r}")
        # The synchronous model endpoint reads uploads the same way.
        predicted = await client.post(
            f"{API}/models/bbox-detector/predict", files={"image": (entry.filename, entry.data, entry.content_type)}, headers=users.alice
        )
        if predicted.status_code != entry.status:
            wrong.append(f"{entry.name} via /models: expected {entry.status}, got {predicted.status_code}")
        if (rows := await stored_rows(engine)) != NOTHING_STORED:
            wrong.append(f"{entry.name}: rows stored for a refusal: {rows}")
    assert not wrong, "\n".join(wrong)
    listed = (await client.get(f"{API}/tasks", headers=users.alice)).json()
    assert listed["total"] == 0


async def test_accepted_uploads_are_processed_upright(
    client: httpx.AsyncClient, users: Users, engine: AsyncEngine, settings: Settings
) -> None:
    entries = [e for e in corpus_for(settings.limits) if e.accepted]
    submitted = {}
    for entry in entries:
        response = await send(client, users.alice, entry)
        assert response.status_code == 202, f"{entry.name}: {response.status_code} {response.text}"
        submitted[entry.name] = response.json()["id"]

    wrong = []
    for entry in entries:
        task_id = submitted[entry.name]
        task = await wait_until_finished(client, users.alice, task_id)
        if task["status"] != "succeeded":
            wrong.append(f"{entry.name}: {task['status']} ({task['error']})")
            continue
        result = (await client.get(f"{API}/tasks/{task_id}/result", headers=users.alice)).json()
        width, height = entry.size
        if result["image"] != {"width": width, "height": height}:
            wrong.append(f"{entry.name}: reported {result['image']}, upright it is {width}×{height}")
        if entry.shape_at and not found_at(result["primitives"], entry.shape_at):
            wrong.append(f"{entry.name}: shape not found at {entry.shape_at} of the upright picture: {result['primitives']}")
        stored = await client.get(f"{API}/tasks/{task_id}/input", headers=users.alice)
        # Served back byte for byte, typed by what the bytes are (not what the client claimed), never sniffed.
        if (stored.content, stored.headers["content-type"], stored.headers["x-content-type-options"]) != (
            entry.data, entry.stored_type, "nosniff"
        ):
            wrong.append(f"{entry.name}: input served as {stored.headers['content-type']}, {len(stored.content)} bytes")
    assert not wrong, "\n".join(wrong)
    rows = await stored_rows(engine)
    assert rows["tasks"] == rows["task_inputs"] == rows["scene_results"] == len(entries)


# ---------------------------------------------------------------------------------------------
# Oversized bodies, sent slowly


async def test_slow_oversized_upload_is_cut_off_without_buffering_it(database_url: str, tmp_path: Path, engine: AsyncEngine) -> None:
    limit = 100_000
    body_size = 100 * limit  # 10 MB, sent in 4 KB pieces with a pause before each, and no Content-Length
    chunk = 4096
    settings = make_settings(database_url, tmp_path, max_upload_bytes=limit)
    app = create_app(settings, models=BoundingBoxCatalog(), pipeline=BoundingBoxPipeline())
    sent = 0

    async def slow_body():
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
        yield b"\x89PNG\r\n\x1a\n"
        while sent < body_size:
            await asyncio.sleep(0.002)
            sent += chunk
            yield bytes(chunk)
        yield b"\r\n--b--\r\n"

    async with LifespanManager(app) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http:
            headers = await login(http, "admin", settings.auth.admin_password.get_secret_value())
            tracemalloc.start()
            try:
                response = await http.post(
                    f"{API}/tasks", content=slow_body(), headers={**headers, "Content-Type": "multipart/form-data; boundary=b"}
                )
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert "content-length" not in response.request.headers  # streamed: only counting the bytes can stop it
    assert response.status_code == 413, response.text
    assert f"{limit} bytes" in response.json()["detail"]
    assert sent < 4 * limit, f"the server read {sent} bytes of a {body_size}-byte body"
    # What is held is bounded by the limit (about 0.5 MB measured here), not by the body.
    assert peak < 10 * limit, f"peak {peak} bytes allocated while refusing a {body_size}-byte body"
    assert await stored_rows(engine) == NOTHING_STORED
