"""Deleting a task removes its image and results, and a retention setting deletes finished tasks
once they are old enough (a periodic job; rows are aged in SQL rather than waited for)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from db.engine import SessionFactory
from db.models import Primitive, SceneResult, Task, TaskInput
from db.types import utcnow
from serve_app.settings import Settings
from tests.support.api import API, Users, submit, wait_until_finished
from tests.support.apps import make_app
from tests.support.databases import make_settings
from tests.support.images import rectangle_image

RETENTION_DAYS = 30


@pytest.fixture(scope="module")
def app_settings(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        backend_url, tmp_path_factory.mktemp("data"), retention={"retention_days": RETENTION_DAYS, "housekeeping_interval_s": 0.1}
    )


async def _stored_rows(sessions: SessionFactory, task_id: str) -> dict[str, int]:
    """How many rows each table holds for one task."""
    key = uuid.UUID(task_id)
    async with sessions() as session:
        return {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model).where(column == key))
            for model, column in (
                (Task, Task.id),
                (TaskInput, TaskInput.task_id),
                (Primitive, Primitive.task_id),
                (SceneResult, SceneResult.task_id),
            )
        }


async def _finished_tasks(client: httpx.AsyncClient, owner: dict[str, str], count: int) -> list[str]:
    ids = [(await submit(client, owner, rectangle_image())).json()["id"] for _ in range(count)]
    for task_id in ids:
        assert (await wait_until_finished(client, owner, task_id))["status"] == "succeeded"
    return ids


async def _finished_days_ago(sessions: SessionFactory, task_id: str, days: float) -> None:
    async with sessions() as session:
        await session.execute(
            update(Task).where(Task.id == uuid.UUID(task_id)).values(finished_at=utcnow() - timedelta(days=days))
        )
        await session.commit()


async def test_deleting_a_task_removes_its_image_and_results(
    client: httpx.AsyncClient, users: Users, sessions: SessionFactory
) -> None:
    deleted, kept = await _finished_tasks(client, users.alice, 2)
    assert (await _stored_rows(sessions, deleted))["primitives"] >= 1
    assert (await client.delete(f"{API}/tasks/{deleted}", headers=users.alice)).status_code == 204
    assert await _stored_rows(sessions, deleted) == {"tasks": 0, "task_inputs": 0, "primitives": 0, "scene_results": 0}
    assert (await _stored_rows(sessions, kept))["task_inputs"] == 1


async def test_finished_tasks_older_than_the_retention_are_deleted_by_the_periodic_job(
    client: httpx.AsyncClient, users: Users, sessions: SessionFactory
) -> None:
    old, recent = await _finished_tasks(client, users.alice, 2)
    await _finished_days_ago(sessions, old, RETENTION_DAYS + 1)
    await _finished_days_ago(sessions, recent, RETENTION_DAYS - 1)
    deadline = time.monotonic() + 10
    while (await _stored_rows(sessions, old))["tasks"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await _stored_rows(sessions, old) == {"tasks": 0, "task_inputs": 0, "primitives": 0, "scene_results": 0}
    assert (await _stored_rows(sessions, recent))["task_inputs"] == 1
    assert (await client.get(f"{API}/tasks/{old}", headers=users.alice)).status_code == 404


async def test_unfinished_tasks_are_kept_however_old(users: Users, sessions: SessionFactory, client: httpx.AsyncClient) -> None:
    """Retention counts from when a task finished: a long-queued task is never dropped unseen."""
    task_id = (await submit(client, users.alice, rectangle_image())).json()["id"]
    await wait_until_finished(client, users.alice, task_id)
    async with sessions() as session:  # back to queued, as if it had waited for months
        await session.execute(
            update(Task)
            .where(Task.id == uuid.UUID(task_id))
            .values(
                status="queued",
                finished_at=None,
                created_at=utcnow() - timedelta(days=365),
                run_after=utcnow() + timedelta(days=1),  # so the dispatcher leaves it alone
            )
        )
        await session.commit()
    await asyncio.sleep(0.5)  # several housekeeping rounds
    assert (await _stored_rows(sessions, task_id))["tasks"] == 1


class TestWithoutRetention:
    """With an app of its own, that has no retention set."""

    @pytest.fixture(scope="class")
    @classmethod
    def app_settings(cls, backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
        return make_settings(backend_url, tmp_path_factory.mktemp("data"), retention={"housekeeping_interval_s": 0.1})

    @pytest.fixture(scope="class")
    @classmethod
    def app(cls, app_settings: Settings) -> FastAPI:
        return make_app(app_settings)

    async def test_tasks_are_kept_when_no_retention_is_set(
        self, client: httpx.AsyncClient, users: Users, sessions: SessionFactory
    ) -> None:
        (task_id,) = await _finished_tasks(client, users.alice, 1)
        await _finished_days_ago(sessions, task_id, 3650)
        await asyncio.sleep(0.5)
        assert (await _stored_rows(sessions, task_id))["task_inputs"] == 1
