"""Getting results in one request (`Prefer: wait`, `?wait=`) and submitting many images in one
(`POST /batches`), as a client would use them, on both databases."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import func, select

from db.models import Task
from tests.support.api import API, Users, submit
from tests.support.images import rectangle_image

NOT_AN_IMAGE = b"%PDF-1.7 not an image at all"


async def test_prefer_wait_answers_with_the_finished_task_and_its_result(client: httpx.AsyncClient, users: Users) -> None:
    image = rectangle_image(size=(200, 100), box=(50, 20, 149, 59))
    response = await submit(client, users.alice, image, Prefer="wait=20")
    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == "wait=20"
    task = response.json()
    assert task["status"] == "succeeded"
    [box] = task["result"]["primitives"]
    assert (box["x"], box["y"], box["width"], box["height"]) == (0.5, 0.4, 0.5, 0.4)
    assert task["result"] == (await client.get(f"{API}/tasks/{task['id']}/result", headers=users.alice)).json()


async def test_without_prefer_the_submit_answers_at_once_with_no_result(client: httpx.AsyncClient, users: Users) -> None:
    response = await submit(client, users.alice, rectangle_image())
    assert response.status_code == 202
    assert response.json()["result"] is None and "Preference-Applied" not in response.headers


async def test_wait_runs_out_with_the_task_still_queued(client: httpx.AsyncClient, users: Users, pipeline) -> None:
    pipeline.delay_s = 2.0
    started = time.perf_counter()
    response = await submit(client, users.alice, rectangle_image(), Prefer="wait=0.5")
    assert time.perf_counter() - started < 1.5
    assert response.status_code == 202
    assert response.json()["status"] in ("queued", "running") and response.json()["result"] is None
    # The long poll then brings the result.
    task = (await client.get(f"{API}/tasks/{response.json()['id']}", params={"wait": 20}, headers=users.alice)).json()
    assert task["status"] == "succeeded" and task["result"]["scene"]["class_name"] == "shape"


async def test_unusable_wait_values(client: httpx.AsyncClient, users: Users) -> None:
    task_id = (await submit(client, users.alice, rectangle_image())).json()["id"]
    for bad in ("-1", "61", "soon"):
        response = await client.get(f"{API}/tasks/{task_id}", params={"wait": bad}, headers=users.alice)
        assert response.status_code == 422, bad
    # A Prefer the server cannot honour is ignored (RFC 7240): the submit answers at once.
    response = await submit(client, users.alice, rectangle_image(), Prefer="wait=forever")
    assert response.status_code == 202 and "Preference-Applied" not in response.headers


async def test_nobody_waits_on_someone_elses_task(client: httpx.AsyncClient, users: Users) -> None:
    task_id = (await submit(client, users.alice, rectangle_image())).json()["id"]
    response = await client.get(f"{API}/tasks/{task_id}", params={"wait": 5}, headers=users.bob)
    assert response.status_code == 404


def _parts(*images: bytes) -> list:
    return [("images", (f"image-{i}.png", data, "image/png")) for i, data in enumerate(images)]


async def test_batch_submit_makes_one_task_per_image_and_refuses_only_the_bad_one(
    client: httpx.AsyncClient, users: Users, sessions
) -> None:
    good = [rectangle_image(size=(60 + i, 40), box=(5, 5, 20, 20)) for i in range(3)]
    response = await client.post(
        f"{API}/batches", files=_parts(good[0], NOT_AN_IMAGE, good[1], b"", good[2]), headers={**users.alice, "Prefer": "wait=20"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["refused"]) == (3, 2)
    items = body["items"]
    assert [item["index"] for item in items] == [0, 1, 2, 3, 4]
    assert [item["status_code"] for item in items] == [200, 415, 200, 422, 200]
    assert "JPEG, PNG, WebP or BMP" in items[1]["detail"] and "empty" in items[3]["detail"]
    assert items[1]["task"] is None and items[0]["filename"] == "image-0.png"
    for width, (item, image) in enumerate(zip([items[0], items[2], items[4]], good), start=60):
        task = item["task"]
        assert task["status"] == "succeeded" and task["result"]["image"] == {"width": width, "height": 40}
        stored = await client.get(f"{API}/tasks/{task['id']}/input", headers=users.alice)
        assert stored.content == image
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Task)) == 3


async def test_batch_submit_without_waiting_and_its_idempotency(client: httpx.AsyncClient, users: Users) -> None:
    images = [rectangle_image(size=(50 + i, 40), box=(5, 5, 20, 20)) for i in range(2)]
    headers = {**users.alice, "Idempotency-Key": "folder-2026-12-01"}
    first = await client.post(f"{API}/batches", files=_parts(*images), headers=headers)
    assert first.status_code == 202
    assert all(item["status_code"] == 202 and item["task"]["result"] is None for item in first.json()["items"])
    again = await client.post(f"{API}/batches", files=_parts(*images), headers=headers)
    assert [i["task"]["id"] for i in again.json()["items"]] == [i["task"]["id"] for i in first.json()["items"]]
    # The same key with other images: each image's key is taken, so each is refused on its own.
    swapped = await client.post(f"{API}/batches", files=_parts(images[1], images[0]), headers=headers)
    assert [item["status_code"] for item in swapped.json()["items"]] == [409, 409]


async def test_batch_limits(client: httpx.AsyncClient, users: Users, settings) -> None:
    many = _parts(*[rectangle_image()] * (settings.limits.max_batch_images + 1))
    response = await client.post(f"{API}/batches", files=many, headers=users.alice)
    assert response.status_code == 422 and "at most" in response.json()["detail"]
    response = await client.post(f"{API}/batches", files=[], data={"x": "1"}, headers=users.alice)
    assert response.status_code == 422
    none_good = await client.post(f"{API}/batches", files=_parts(NOT_AN_IMAGE), headers=users.alice)
    assert none_good.status_code == 202 and none_good.json()["accepted"] == 0


async def test_a_task_deleted_while_someone_waits_for_it_ends_the_wait_with_404(client: httpx.AsyncClient, users: Users, pipeline) -> None:
    import asyncio

    pipeline.delay_s = 5.0
    task_id = (await submit(client, users.alice, rectangle_image())).json()["id"]
    waiting = asyncio.create_task(client.get(f"{API}/tasks/{task_id}", params={"wait": 30}, headers=users.alice))
    await asyncio.sleep(0.3)
    assert (await client.delete(f"{API}/tasks/{task_id}", headers=users.alice)).status_code == 204
    started = time.perf_counter()
    response = await asyncio.wait_for(waiting, 10)
    assert response.status_code == 404
    assert time.perf_counter() - started < 5


async def test_a_callback_url_sent_twice_is_refused_on_both_submits(client: httpx.AsyncClient, users: Users, sessions) -> None:
    image = rectangle_image(size=(50, 40), box=(5, 5, 20, 20))
    twice = {"callback_url": ["https://a.example/hook", "https://b.example/hook"]}
    single = await client.post(f"{API}/tasks", files={"image": ("i.png", image)}, data=twice, headers=users.alice)
    batch = await client.post(f"{API}/batches", files=_parts(image), data=twice, headers=users.alice)
    for response in (single, batch):
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == "callback_url was sent 2 times: send it once."
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Task)) == 0
