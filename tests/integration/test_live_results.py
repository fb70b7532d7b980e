"""Following tasks live (Server-Sent Events) and the result drawn over the image."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from serve_app.settings import Settings
from tests.support.api import API, Users, create_user, login, submit, wait_until_finished
from tests.support.databases import ADMIN_PASSWORD
from tests.support.events import EventStream
from tests.support.images import rectangle_image
from tests.support.live_server import live_server
from tests.support.pipeline import BoundingBoxPipeline

ORDER = ["queued", "running", "succeeded"]
BOX = (50, 20, 150, 60)  # the red rectangle of `rectangle_image()`, inclusive


@pytest.fixture(scope="module")
def pipeline() -> BoundingBoxPipeline:
    return BoundingBoxPipeline(delay_s=0.3)  # slow enough to see `running`


async def test_task_events_follow_one_task_to_the_end(client: httpx.AsyncClient, users: Users) -> None:
    task = (await submit(client, users.alice, rectangle_image())).json()
    async with client.stream("GET", f"{API}/tasks/{task['id']}/events", headers=users.alice) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = await EventStream(response).read()  # the stream ends by itself after the last state
    statuses = [data["status"] for name, data in events]
    assert {name for name, _ in events} == {"task"} and all(data["id"] == task["id"] for _, data in events)
    assert statuses[-1] == "succeeded" and "running" in statuses
    assert statuses == sorted(set(statuses), key=ORDER.index)  # each once, in order


async def test_task_events_answer_like_the_task_route_for_strangers(client: httpx.AsyncClient, users: Users) -> None:
    task = (await submit(client, users.alice, rectangle_image())).json()
    assert (await client.get(f"{API}/tasks/{task['id']}/events", headers=users.bob)).status_code == 404
    assert (await client.get(f"{API}/tasks/{task['id']}/events")).status_code == 401
    assert (await client.get(f"{API}/events")).status_code == 401


@pytest.fixture
def live_url(app: FastAPI, settings: Settings) -> Iterator[str]:
    with live_server(app) as url:
        yield url


@pytest.fixture
async def live(live_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        yield http


async def test_user_stream_shows_new_changed_and_deleted_tasks(live: httpx.AsyncClient) -> None:
    admin = await login(live, "admin", ADMIN_PASSWORD)
    alice = await create_user(live, admin, "alice", "alice-password-1")
    bob = await create_user(live, admin, "bob", "bob-password-12")
    earlier = (await submit(live, alice, rectangle_image())).json()
    await wait_until_finished(live, alice, earlier["id"])
    async with live.stream("GET", f"{API}/events", headers=alice) as response:
        stream = EventStream(response)
        [(name, first)] = await stream.read(1)  # the snapshot: her one task
        assert (name, first["id"], first["status"]) == ("task", earlier["id"], "succeeded")
        await submit(live, bob, rectangle_image())  # someone else's: never shown to her
        new = (await submit(live, alice, rectangle_image())).json()
        events = await stream.read_until(lambda name, data: data.get("status") == "succeeded")
        assert {(n, d["id"]) for n, d in events} == {("task", new["id"])}
        statuses = [d["status"] for _, d in events]  # a state shorter than a poll may be skipped
        assert statuses[-1] == "succeeded" and statuses == sorted(set(statuses), key=ORDER.index)
        assert (await live.delete(f"{API}/tasks/{earlier['id']}", headers=alice)).status_code == 204
        assert await stream.read(1) == [("deleted", {"id": earlier["id"]})]


async def test_result_png_draws_the_boxes_over_the_image(client: httpx.AsyncClient, users: Users) -> None:
    task = (await submit(client, users.alice, rectangle_image())).json()
    early = await client.get(f"{API}/tasks/{task['id']}/result.png", headers=users.alice)
    assert early.status_code == 409 and early.json()["status"] in ("queued", "running")
    await wait_until_finished(client, users.alice, task["id"])
    response = await client.get(f"{API}/tasks/{task['id']}/result.png", headers=users.alice)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    drawn = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)
    original = np.asarray(Image.open(io.BytesIO(rectangle_image())).convert("RGB")).astype(int)
    assert drawn.shape == original.shape
    changed = np.abs(drawn - original).sum(axis=2) > 60
    left, top, right, bottom = BOX
    assert changed[top:bottom + 1, left].mean() > 0.8 and changed[top:bottom + 1, right].mean() > 0.8  # box outline
    assert changed[4:10, 4:30].mean() > 0.5  # the scene's label, inside the top-left corner
    assert not changed[-15:, :40].any()  # far from box, label and scene banner: untouched
    assert (await client.get(f"{API}/tasks/{task['id']}/result.png", headers=users.bob)).status_code == 404


async def test_result_png_is_upright_for_an_exif_rotated_photo(client: httpx.AsyncClient, users: Users) -> None:
    from tests.support.images import encode

    image = Image.open(io.BytesIO(rectangle_image(size=(200, 100))))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side (100×200); upright it is 200 wide and 100 tall again
    rotated = encode(image.rotate(90, expand=True).convert("RGB"), "JPEG", exif=exif)
    task = (await submit(client, users.alice, rotated)).json()
    await wait_until_finished(client, users.alice, task["id"])
    response = await client.get(f"{API}/tasks/{task['id']}/result.png", headers=users.alice)
    assert Image.open(io.BytesIO(response.content)).size == (200, 100)
