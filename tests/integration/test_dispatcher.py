"""The dispatcher against a real database and a test pipeline."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from db import queue
from db.models import Primitive, SceneResult, Task
from deployments.contract import ImagePayload, PipelineResult
from serve_app.dispatcher import Dispatcher
from serve_app.settings import QueueSettings
from serve_app.uploads import validate_image
from tests.support.images import rectangle_image
from tests.support.pipeline import BoundingBoxPipeline
from tests.support.queue import BOUNDS, age_leases, get_task, make_user


def fast_settings(**overrides: float) -> QueueSettings:
    values = {"poll_interval_s": 0.01, "heartbeat_s": 0.05, "lease_s": 30, "retry_backoff_s": 0, "max_in_flight": 4}
    return QueueSettings(**{**values, **overrides})


async def submit_images(sessions, owner, images: list[bytes], max_attempts: int = 3) -> list:
    ids = []
    for data in images:
        upload = validate_image(data, max_bytes=10**7, max_pixels=10**7)
        async with sessions() as session:
            task, _ = await queue.enqueue(session, owner_id=owner, upload=upload, max_attempts=max_attempts, bounds=BOUNDS)
        ids.append(task.id)
    return ids


async def until_succeeded(sessions, task_id, timeout_s: float = 5) -> None:
    for _ in range(int(timeout_s / 0.025)):
        if (await get_task(sessions, task_id)).status == "succeeded":
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"task {task_id} did not succeed within {timeout_s} s")


async def statuses(sessions) -> dict:
    async with sessions() as session:
        return dict((await session.execute(select(Task.id, Task.status))).all())


async def test_results_are_stored_for_every_task(sessions) -> None:
    owner = await make_user(sessions)
    ids = await submit_images(sessions, owner, [rectangle_image(size=(40 + i, 40), box=(5, 5, 20, 20)) for i in range(10)])
    pipeline = BoundingBoxPipeline()
    await Dispatcher(sessions, pipeline, fast_settings()).drain()
    assert set((await statuses(sessions)).values()) == {"succeeded"}
    assert pipeline.calls == 10
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SceneResult)) == 10
        assert await session.scalar(select(func.count()).select_from(Primitive)) == 10
    assert len(ids) == 10


class FlakyPipeline(BoundingBoxPipeline):
    """Fails the first call for every image, then works."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    async def __call__(self, image: ImagePayload) -> PipelineResult:
        if image.width not in self.seen:
            self.seen.add(image.width)
            raise ConnectionError("replica went away")
        return await super().__call__(image)


async def test_a_failed_attempt_is_retried(sessions) -> None:
    owner = await make_user(sessions)
    [task_id] = await submit_images(sessions, owner, [rectangle_image()])
    await Dispatcher(sessions, FlakyPipeline(), fast_settings()).drain()
    task = await get_task(sessions, task_id)
    assert (task.status, task.attempts, task.error) == ("succeeded", 2, None)


async def test_poison_image_fails_once_and_does_not_block_others(sessions) -> None:
    owner = await make_user(sessions)
    poison, *good = await submit_images(
        sessions, owner, [rectangle_image(size=(20, 40), box=(2, 2, 10, 10))] + [rectangle_image() for _ in range(3)]
    )
    pipeline = BoundingBoxPipeline(reject_below_width=32)
    await Dispatcher(sessions, pipeline, fast_settings()).drain()
    task = await get_task(sessions, poison)
    assert (task.status, task.attempts) == ("failed", 1)
    assert "at least 32 pixels wide" in task.error
    assert [(await get_task(sessions, t)).status for t in good] == ["succeeded"] * 3
    assert pipeline.calls == 4


async def test_never_more_in_flight_than_allowed(sessions) -> None:
    owner = await make_user(sessions)
    await submit_images(sessions, owner, [rectangle_image() for _ in range(12)])
    running = peak = 0

    class Counting(BoundingBoxPipeline):
        async def __call__(self, image: ImagePayload) -> PipelineResult:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1
            return await super().__call__(image)

    await Dispatcher(sessions, Counting(), fast_settings(max_in_flight=3)).drain()
    assert peak == 3
    assert set((await statuses(sessions)).values()) == {"succeeded"}


async def test_deleting_a_running_task_stops_its_work(sessions) -> None:
    from db import tasks

    owner = await make_user(sessions)
    [task_id] = await submit_images(sessions, owner, [rectangle_image()])
    started, cancelled = asyncio.Event(), asyncio.Event()

    class Slow(BoundingBoxPipeline):
        async def __call__(self, image: ImagePayload) -> PipelineResult:
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return await super().__call__(image)

    dispatcher = Dispatcher(sessions, Slow(), fast_settings())
    dispatcher.start()
    await asyncio.wait_for(started.wait(), 5)
    async with sessions() as session:
        assert await tasks.delete_owned(session, task_id, owner)
    await asyncio.wait_for(cancelled.wait(), 5)  # the next heartbeat finds the attempt gone
    await dispatcher.stop()
    assert dispatcher.in_flight == 0


async def test_tasks_of_a_dead_dispatcher_are_finished_by_another(sessions) -> None:
    owner = await make_user(sessions)
    ids = await submit_images(sessions, owner, [rectangle_image(size=(40 + i, 40), box=(5, 5, 20, 20)) for i in range(6)])

    class Hangs(BoundingBoxPipeline):
        async def __call__(self, image: ImagePayload) -> PipelineResult:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

    doomed = Dispatcher(sessions, Hangs(), fast_settings(max_in_flight=4, heartbeat_s=3600))
    assert await doomed.dispatch_available() == 4
    await doomed.stop(grace_s=0)  # the process "dies": its 4 tasks stay `running`, leased
    assert sorted((await statuses(sessions)).values()) == ["queued"] * 2 + ["running"] * 4

    await age_leases(sessions)  # ... until their leases run out
    survivor_pipeline = BoundingBoxPipeline()
    survivor = Dispatcher(sessions, survivor_pipeline, fast_settings())
    await survivor.rescue()
    await survivor.drain()
    assert set((await statuses(sessions)).values()) == {"succeeded"}
    assert survivor_pipeline.calls == 6  # each task's result came from exactly one finished run
    attempts = {t: (await get_task(sessions, t)).attempts for t in ids}
    assert sorted(attempts.values()) == [1, 1, 2, 2, 2, 2]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SceneResult)) == 6


async def test_dispatcher_wakes_promptly_when_told(sessions) -> None:
    owner = await make_user(sessions)
    pipeline = BoundingBoxPipeline()
    dispatcher = Dispatcher(sessions, pipeline, fast_settings(poll_interval_s=30))
    dispatcher.start()
    try:
        await asyncio.sleep(0.1)  # first round done; now it would sleep 30 s
        [task_id] = await submit_images(sessions, owner, [rectangle_image()])
        dispatcher.wake()
        await until_succeeded(sessions, task_id)
    finally:
        await dispatcher.stop()


@pytest.mark.parametrize("backend_url", ["postgresql"], indirect=True)
async def test_postgres_notify_wakes_an_idle_dispatcher(sessions, database_url: str) -> None:
    """A task enqueued by another process starts without waiting for the next poll."""
    from db.notify import TaskListener

    owner = await make_user(sessions)
    dispatcher = Dispatcher(sessions, BoundingBoxPipeline(), fast_settings(poll_interval_s=30))
    listener = TaskListener(database_url, dispatcher.wake)
    dispatcher.start()
    listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        await asyncio.sleep(0.1)  # the dispatcher has looked once and now sleeps for 30 s
        [task_id] = await submit_images(sessions, owner, [rectangle_image()])
        await until_succeeded(sessions, task_id)
    finally:
        await listener.stop()
        await dispatcher.stop()
