"""One change feed per replica serves every open event stream (serve_app/task_changes.py): the
database work does not grow with the streams, and on PostgreSQL no state change is skipped.

The app here runs no dispatcher: the test moves its task through the queue itself, with the
queue functions a dispatcher calls, so it knows every state the streams must show."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from db import queue
from db.engine import SessionFactory
from serve_app.api import create_app
from tests.support.api import API, create_user, login, submit
from tests.support.databases import ADMIN_PASSWORD, make_settings
from tests.support.events import EventStream
from tests.support.images import rectangle_image
from tests.support.live_server import live_server
from tests.support.pipeline import BoundingBoxCatalog


@contextmanager
def counted(app: FastAPI) -> Iterator[list[str]]:
    """The statements the app sends to its database meanwhile."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append(statement)

    engine = app.state.services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[FastAPI, str]]:
    app = create_app(make_settings(database_url, tmp_path), models=BoundingBoxCatalog())  # no pipeline: no dispatcher
    with live_server(app) as url:
        yield app, url


@asynccontextmanager
async def opened(http: httpx.AsyncClient, path: str, headers: dict[str, str], count: int) -> AsyncIterator[list[EventStream]]:
    """`count` streams of `path`, each past its first event."""
    async with contextlib.AsyncExitStack() as stack:
        streams = []
        for _ in range(count):
            response = await stack.enter_async_context(http.stream("GET", f"{API}{path}", headers=headers))
            assert response.status_code == 200
            streams.append(EventStream(response))
        for stream in streams:
            await stream.read(1)
        yield streams


async def _until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def _alice_with_a_task(http: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    """A user made by the admin, her headers, and a task of hers (queued: nothing runs it)."""
    admin = await login(http, "admin", ADMIN_PASSWORD)
    alice = await create_user(http, admin, "alice", "alice-password-1")
    return alice, (await submit(http, alice, rectangle_image())).json()["id"]


async def test_idle_streams_add_no_database_work_however_many(server: tuple[FastAPI, str]) -> None:
    app, url = server
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        alice, task_id = await _alice_with_a_task(http)
        per_second = {}
        for count in (1, 30):
            async with opened(http, f"/tasks/{task_id}/events", alice, count), opened(http, "/events", alice, count):
                await asyncio.sleep(0.3)  # SQLite: each new stream reads once more after its first poll
                with counted(app) as sent:
                    await asyncio.sleep(0.5)
                per_second[count] = 2 * len(sent)
    # PostgreSQL: streams wait for notifications and send nothing. SQLite: one poller reads for
    # every stream at once, 20 times a second (events_poll_interval_s = 0.05 in the tests).
    assert per_second[30] <= per_second[1] + 4, per_second
    assert per_second[30] <= 25, per_second


async def test_waiting_requests_send_no_queries_while_they_wait(server: tuple[FastAPI, str]) -> None:
    """`?wait=` (the client's and the CLI's `wait`) follows the same feed: thirty requests held
    on a queued task cost what one does, and all answer once it is deleted."""
    app, url = server
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        alice, task_id = await _alice_with_a_task(http)
        per_second = {}
        for count in (1, 30):
            # A request whose client has gone stays held until its wait is over: count those too.
            held = app.state.services.changes.subscribers + count
            waiting = [asyncio.create_task(http.get(f"{API}/tasks/{task_id}", params={"wait": 30}, headers=alice)) for _ in range(count)]
            await _until(lambda held=held: app.state.services.changes.subscribers == held)  # all of them are held now
            await asyncio.sleep(0.3)  # SQLite: each reads once more after the poller's first read of it
            with counted(app) as sent:
                await asyncio.sleep(0.5)
            per_second[count] = 2 * len(sent)
            if count == 1:
                for request in waiting:
                    request.cancel()
                await asyncio.gather(*waiting, return_exceptions=True)
        assert (await http.delete(f"{API}/tasks/{task_id}", headers=alice)).status_code == 204
        answers = await asyncio.wait_for(asyncio.gather(*waiting), 10)
    assert {answer.status_code for answer in answers} == {404}
    # Re-reading every 2 s each, as they did before the feed, 30 would add 15 a second.
    assert per_second[30] <= per_second[1] + 6, per_second


async def test_streams_show_every_state_however_quick(server: tuple[FastAPI, str], sessions: SessionFactory) -> None:
    """Running for a few milliseconds, retried once: each stream still shows each state, in
    order (a feed that polled would skip what lasted less than a poll)."""
    _, url = server
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        alice, task_id = await _alice_with_a_task(http)
        async with opened(http, f"/tasks/{task_id}/events", alice, 5) as one_task, opened(http, "/events", alice, 5) as everything:
            async with sessions() as session:
                [claim] = await queue.claim(session, worker_id="test", limit=1, lease_s=30)
                await queue.fail(session, claim, error="once", retryable=True, backoff_s=0)
                [claim] = await queue.claim(session, worker_id="test", limit=1, lease_s=30)
                outcome = queue.Outcome(claim=claim, primitives=[], scene={
                    "class_id": 0, "class_name": "none", "confidence": 1.0, "top_k": [],
                    "detector_model": "d:1", "classifier_model": "c:1",
                })
                assert await queue.finish_many(session, [outcome]) == {uuid.UUID(task_id)}
            expected = [("running", 1), ("queued", 1), ("running", 2), ("succeeded", 2)]
            for stream in [*one_task, *everything]:
                events = await stream.read_until(lambda name, data: data.get("status") == "succeeded")
                assert [(d["status"], d["attempts"]) for _, d in events] == expected


async def test_a_task_stored_by_one_replica_shows_in_the_streams_of_another(database_url: str, tmp_path: Path) -> None:
    """Two ingress replicas on one database: a task submitted through the first appears, queued,
    in its owner's stream on the second (PostgreSQL: the insert trigger's NOTIFY; SQLite: its log)."""
    replicas = [create_app(make_settings(database_url, tmp_path), models=BoundingBoxCatalog()) for _ in range(2)]
    with live_server(replicas[0]) as first_url, live_server(replicas[1]) as second_url:
        async with httpx.AsyncClient(base_url=first_url, timeout=30) as first, httpx.AsyncClient(base_url=second_url, timeout=30) as second:
            alice, _ = await _alice_with_a_task(first)  # the stream's first event
            async with opened(second, "/events", alice, 1) as [stream]:
                await asyncio.sleep(0.3)  # SQLite: the poller starts from its first read after the stream opened
                task_id = (await submit(first, alice, rectangle_image())).json()["id"]
                events = await stream.read_until(lambda name, data: data.get("id") == task_id, timeout_s=10)
    assert events[-1][1]["status"] == "queued"
