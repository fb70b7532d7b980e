"""The hot path's direct statements on PostgreSQL (db/direct.py) mean what the general code
means: the same rows stored, the same bounds, the same user and results read back, and the same
fence on a batch's claim and finish (each task claimed once, a result stored only while its
attempt holds)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from db import queue, tasks, users
from db.direct import DirectStatements
from db.engine import SessionFactory
from db.models import Task, TaskInput
from tests.support.queue import a_result, age_leases, make_user, result_rows

pytestmark = pytest.mark.parametrize("backend_url", ["postgresql"], indirect=True)

MAX_ATTEMPTS = 3


@pytest.fixture
async def direct(database_url: str) -> AsyncIterator[DirectStatements]:
    statements = await DirectStatements.open(database_url, max_size=2)
    yield statements
    await statements.close()


def _upload(label: str) -> queue.NewInput:
    data = f"image {label}".encode()
    return queue.NewInput(data=data, content_type="image/png", width=40, height=30, sha256=hashlib.sha256(data).hexdigest())


async def _stored(sessions: SessionFactory, task_id: uuid.UUID) -> tuple[Task, TaskInput]:
    async with sessions() as session:
        task = await session.get(Task, task_id)
        image = await session.get(TaskInput, task_id)
    assert task is not None and image is not None
    return task, image


async def test_enqueue_stores_the_rows_the_general_path_stores(sessions: SessionFactory, direct: DirectStatements) -> None:
    owner = await make_user(sessions)
    bounds = queue.Bounds(per_user=10, total=10)
    mine = queue.new_task(owner, MAX_ATTEMPTS, callback_url="https://hooks.example/done")
    await direct.enqueue(mine, _upload("a"), bounds)
    async with sessions() as session:
        general, _ = await queue.enqueue(
            session, owner_id=owner, upload=_upload("a"), max_attempts=MAX_ATTEMPTS, bounds=bounds, callback_url="https://hooks.example/done"
        )

    (direct_task, direct_image), (general_task, general_image) = await _stored(sessions, mine.id), await _stored(sessions, general.id)
    assert direct_task.created_at == mine.created_at  # the values given, not the server's clock
    differ = {"id", "created_at", "run_after", "webhook_next_at"}
    assert {k: v for k, v in direct_task.model_dump().items() if k not in differ} == {
        k: v for k, v in general_task.model_dump().items() if k not in differ
    }
    assert direct_task.status == "queued" and direct_task.webhook_state == "pending"
    assert direct_task.webhook_next_at == direct_task.created_at
    assert direct_image.model_dump(exclude={"task_id"}) == general_image.model_dump(exclude={"task_id"})
    assert direct_image.data == b"image a"


async def test_enqueue_refuses_beyond_the_bounds_and_stores_nothing(sessions: SessionFactory, direct: DirectStatements) -> None:
    alice, bob = await make_user(sessions, "alice"), await make_user(sessions, "bob")
    bounds = queue.Bounds(per_user=2, total=3)
    for label in ("1", "2"):
        await direct.enqueue(queue.new_task(alice, MAX_ATTEMPTS), _upload(label), bounds)
    with pytest.raises(queue.QueueFull) as refused:
        await direct.enqueue(queue.new_task(alice, MAX_ATTEMPTS), _upload("3"), bounds)
    assert (refused.value.scope, refused.value.limit) == ("user", 2)

    await direct.enqueue(queue.new_task(bob, MAX_ATTEMPTS), _upload("4"), bounds)
    with pytest.raises(queue.QueueFull) as refused:
        await direct.enqueue(queue.new_task(bob, MAX_ATTEMPTS), _upload("5"), bounds)
    assert (refused.value.scope, refused.value.limit) == ("service", 3)

    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Task)) == 3
        assert await session.scalar(select(func.count()).select_from(TaskInput)) == 3  # no image without its task

    # A finished task no longer counts against the bounds.
    async with sessions() as session:
        [claim] = await queue.claim(session, worker_id="w", limit=1, lease_s=30)
    async with sessions() as session:
        primitives, scene = a_result()
        assert await queue.finish(session, claim, primitives=primitives, scene=scene)
    await direct.enqueue(queue.new_task(bob, MAX_ATTEMPTS), _upload("6"), bounds)


async def test_user_is_the_stored_user(sessions: SessionFactory, direct: DirectStatements) -> None:
    user_id = await make_user(sessions, "carol")
    async with sessions() as session:
        general = await users.get_by_id(session, user_id)
    found = await direct.user(user_id)
    assert found is not None and general is not None
    assert found.model_dump() == general.model_dump()
    assert await direct.user(uuid.uuid4()) is None


async def test_results_are_the_general_paths_results(sessions: SessionFactory, direct: DirectStatements) -> None:
    owner = await make_user(sessions)
    bounds = queue.Bounds(per_user=10, total=10)
    finished, empty, unfinished = (queue.new_task(owner, MAX_ATTEMPTS) for _ in range(3))
    for task in (finished, empty, unfinished):
        await direct.enqueue(task, _upload(str(task.id)), bounds)
    async with sessions() as session:
        claims = {c.task_id: c for c in await queue.claim(session, worker_id="w", limit=3, lease_s=30)}
    primitives, scene = a_result("snowman")
    primitives[0].x = 0.1 + 0.2  # a float that prints long must come back exactly
    async with sessions() as session:
        assert await queue.finish(session, claims[finished.id], primitives=primitives, scene=scene)
    async with sessions() as session:
        assert await queue.finish(session, claims[empty.id], primitives=[], scene=a_result("clutter")[1])

    ids = [finished.id, empty.id, unfinished.id, uuid.uuid4()]
    found = await direct.results(ids)
    async with sessions() as session:
        general = await tasks.get_results(session, ids)
    assert set(found) == set(general) == {finished.id, empty.id}
    for task_id, result in found.items():
        expected = general[task_id]
        assert (result.width, result.height) == (expected.width, expected.height) == (40, 30)
        assert [p.model_dump(exclude={"id"}) for p in result.primitives] == [p.model_dump(exclude={"id"}) for p in expected.primitives]
        assert result.scene.model_dump() == expected.scene.model_dump()
    assert [p.ordinal for p in found[finished.id].primitives] == [0, 1]
    assert found[finished.id].primitives[0].x == 0.1 + 0.2
    assert found[empty.id].primitives == []
    [alone] = (await direct.results([finished.id])).values()  # one task: its own statement
    assert alone.scene.model_dump() == found[finished.id].scene.model_dump()
    assert [p.model_dump() for p in alone.primitives] == [p.model_dump() for p in found[finished.id].primitives]
    assert await direct.results([unfinished.id]) == {}
    assert await direct.results([]) == {}


async def _queued(direct: DirectStatements, owner: uuid.UUID, count: int) -> list[uuid.UUID]:
    ids = []
    for n in range(count):
        task = queue.new_task(owner, MAX_ATTEMPTS)
        await direct.enqueue(task, _upload(str(n)), queue.Bounds(per_user=100, total=100))
        ids.append(task.id)
    return ids


async def test_claim_takes_each_task_once_with_its_image(database_url: str, sessions: SessionFactory, direct: DirectStatements) -> None:
    owner = await make_user(sessions)
    ids = await _queued(direct, owner, 5)
    other = await DirectStatements.open(database_url, max_size=1)  # a second dispatcher
    try:
        (mine, my_images), (theirs, their_images) = await asyncio.gather(
            direct.claim(worker_id="a", limit=3, lease_s=30), other.claim(worker_id="b", limit=3, lease_s=30)
        )
    finally:
        await other.close()
    claimed = [c.task_id for c in mine + theirs]
    assert sorted(claimed) == sorted(ids)  # every task once, none twice
    assert {c.attempt for c in mine + theirs} == {1}
    assert set(my_images) == {c.task_id for c in mine} and set(their_images) == {c.task_id for c in theirs}
    image = my_images[mine[0].task_id]
    assert (image.content_type, image.width, image.height) == ("image/png", 40, 30)
    assert image.data.startswith(b"image ")
    task, _ = await _stored(sessions, mine[0].task_id)
    assert (task.status, task.worker_id, task.attempts) == ("running", "a", 1)
    assert task.lease_expires_at is not None and task.started_at is not None
    assert await direct.claim(worker_id="a", limit=3, lease_s=30) == ([], {})


async def test_finish_stores_only_attempts_still_held(sessions: SessionFactory, direct: DirectStatements) -> None:
    owner = await make_user(sessions)
    kept_id, rescued_id, deleted_id = await _queued(direct, owner, 3)
    claims, _ = await direct.claim(worker_id="a", limit=3, lease_s=30)
    by_id = {c.task_id: c for c in claims}
    await age_leases(sessions, [rescued_id])
    async with sessions() as session:
        await queue.rescue_expired(session)  # back to the queue: attempt 1 no longer holds
    [again], _ = await direct.claim(worker_id="b", limit=1, lease_s=30)
    assert (again.task_id, again.attempt) == (rescued_id, 2)
    async with sessions() as session:
        assert await tasks.delete_owned(session, deleted_id, owner)

    primitives = [{"class_id": 1, "class_name": "square", "x": 0.25, "y": 0.75, "width": 0.5, "height": 0.125, "rotation": 0.1, "confidence": 0.5}] * 2
    scene = {"class_id": 3, "class_name": "house", "confidence": 0.75, "top_k": [{"class_name": "house", "confidence": 0.75}],
             "detector_model": "d:2", "classifier_model": "c:2"}
    outcomes = [queue.Outcome(by_id[task_id], primitives, scene) for task_id in (kept_id, rescued_id, deleted_id)]
    assert await direct.finish_many(outcomes) == {kept_id}
    assert await direct.finish_many(outcomes) == set()  # a duplicate finish writes nothing

    assert await result_rows(sessions, rescued_id) == (0, 0)
    assert await result_rows(sessions, kept_id) == (2, 1)
    task, _ = await _stored(sessions, kept_id)
    assert (task.status, task.worker_id, task.lease_expires_at, task.error) == ("succeeded", None, None, None)
    assert task.finished_at is not None
    async with sessions() as session:
        [stored] = (await tasks.get_results(session, [kept_id])).values()
    assert [(p.ordinal, p.class_name, p.x, p.height) for p in stored.primitives] == [(0, "square", 0.25, 0.125), (1, "square", 0.25, 0.125)]
    assert (stored.scene.class_name, stored.scene.top_k, stored.scene.detector_model) == ("house", scene["top_k"], "d:2")
    rescued, _ = await _stored(sessions, rescued_id)
    assert (rescued.status, rescued.attempts, rescued.worker_id) == ("running", 2, "b")  # the new attempt is untouched
