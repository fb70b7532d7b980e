"""The service under test (a Serve application on the package's Ray cluster) and helpers that
drive it over HTTP."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from db.engine import create_engine
from scripts.chaos.clients import wait_ready
from scripts.datagen.dataset import DEFAULT_SEED, Item, sample
from tests.support.databases import ADMIN_PASSWORD, run_outside_event_loop

API = "/api/v1"
APP = "primscene"
# Its own database: the running app's dispatcher must not take other tests' tasks.
DATABASE = "primscene_test_serve"
METRICS_PORT = 18087  # where the local Ray node serves Prometheus metrics in these tests
QUEUE_BOUND = 40  # unfinished tasks per user; small enough for a flood to reach
# Short leases and backoffs, so that fault tests recover in seconds rather than minutes.
TEST_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_worker_niceness": "0",
    "PRIMSCENE_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "PRIMSCENE_LEASE_S": "4",
    "PRIMSCENE_HEARTBEAT_S": "1",
    "PRIMSCENE_RETRY_BACKOFF_S": "0.2",
    "PRIMSCENE_RESCUE_INTERVAL_S": "1",
    "PRIMSCENE_MAX_ATTEMPTS": "5",
}


@contextmanager
def test_environment() -> Iterator[None]:
    """TEST_ENVIRONMENT set for the replicas a test cluster starts; the old values back after."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in TEST_ENVIRONMENT.items():
            patch.setenv(key, value)
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    url: str
    data_dir: Path
    database_url: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def deploy(self, **args) -> None:
        from ray import serve

        from serve_app.app import AppArgs, build_app

        args = {"max_queued_per_user": QUEUE_BOUND, **args}
        app_args = AppArgs(database_url=self.database_url, data_dir=self.data_dir, **args)
        serve.run(build_app(app_args), name=APP, route_prefix="/", blocking=False)
        wait_ready(self.url)


def held_out_image(index: int):
    """An image of the held-out test split with its ground truth."""
    return sample(Item("test", index, DEFAULT_SEED))


def submit(http: httpx.Client, token: dict[str, str], data: bytes) -> httpx.Response:
    return http.post(f"{API}/tasks", files={"image": ("image", data)}, headers=token)


def wait_for(http: httpx.Client, token: dict[str, str], task_ids: list[str], timeout_s: float = 120) -> dict[str, dict]:
    """Poll until every task has finished; returns the final task objects."""
    deadline = time.monotonic() + timeout_s
    done: dict[str, dict] = {}
    while time.monotonic() < deadline and len(done) < len(task_ids):
        for task_id in task_ids:
            if task_id not in done:
                task = http.get(f"{API}/tasks/{task_id}", headers=token).json()
                if task["status"] in ("succeeded", "failed"):
                    done[task_id] = task
        time.sleep(0.2)
    missing = set(task_ids) - set(done)
    assert not missing, f"{len(missing)} tasks unfinished after {timeout_s} s"
    return done


def result_rows(database_url: str, task_ids: list[str]) -> dict[str, int]:
    """How many scene results each task has in the database (exactly one once it succeeded)."""
    async def count() -> dict[str, int]:
        engine = create_engine(database_url)
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT CAST(task_id AS TEXT), COUNT(*) FROM scene_results GROUP BY task_id"))
            found = {str(task_id).replace("-", ""): n for task_id, n in rows}
        await engine.dispose()
        return found

    found = run_outside_event_loop(asyncio.run, count())
    return {t: found.get(t.replace("-", ""), 0) for t in task_ids}


def submit_many(service: Service, token: dict[str, str], count: int) -> list[str]:
    """Submit `count` images at once (16 connections), so that many wait in the queue."""

    async def submit_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=service.url, timeout=60, limits=httpx.Limits(max_connections=16)) as client:
            return await asyncio.gather(*(
                client.post(f"{API}/tasks", files={"image": ("i", held_out_image(20 + i % 14).encoded)}, headers=token)
                for i in range(count)
            ))

    responses = run_outside_event_loop(asyncio.run, submit_all())
    assert [r.status_code for r in responses] == [202] * count
    return [r.json()["id"] for r in responses]
