"""Faults injected into a running deployment: killed replicas, a stopped database, a poison task."""

from __future__ import annotations

import asyncio
import hashlib
import random
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import ray
from sqlalchemy import select

from db import queue
from db.engine import create_engine, session_factory
from db.models import User
from db.queue import Bounds, NewInput

API = "/api/v1"


def replica_names(app: str, deployment: str) -> list[str]:
    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix))


def kill_replicas_until(done: Callable[[], bool], *, app: str, deployments: list[str], rng: random.Random, every_s: float) -> Counter[str]:
    """Until `done()`, every `every_s` (± half) kill one replica of a randomly chosen deployment,
    as a crash would (no graceful shutdown); Serve starts a replacement. Kills per deployment."""
    kills: Counter[str] = Counter()
    while not done():
        time.sleep(every_s * rng.uniform(0.5, 1.5))
        if done():
            break
        deployment = rng.choice(deployments)
        names = replica_names(app, deployment)
        if not names:  # its replacement is still starting
            continue
        try:
            ray.kill(ray.get_actor(rng.choice(names), namespace="serve"), no_restart=True)
        except ValueError:  # it died between listing and killing
            continue
        kills[deployment] += 1
    return kills


def postgres_cluster(action: str) -> None:
    """`start` or `stop` the machine's PostgreSQL cluster (Debian's pg_ctlcluster)."""
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True)


def wait_for_postgres(timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError("PostgreSQL did not come back")
        time.sleep(0.2)


async def probe_while(stop: threading.Event, url: str, token: str, image: bytes) -> tuple[list[dict], list[str]]:
    """Submit and list every 0.25 s until `stop`: what each answer was and how long it took, and
    the ids of any submits that were accepted."""
    answers, accepted = [], []
    async with httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": token}) as http:
        while not stop.is_set():
            for kind, request in (
                ("submit", lambda: http.post(f"{API}/tasks", files={"image": ("i.jpg", image, "image/jpeg")})),
                ("list", lambda: http.get(f"{API}/tasks", params={"limit": 1})),
            ):
                started = time.perf_counter()
                try:
                    response = await request()
                    status, retry_after = response.status_code, response.headers.get("Retry-After")
                    if kind == "submit" and status == 202:
                        accepted.append(response.json()["id"])
                except httpx.HTTPError as exc:
                    status, retry_after = type(exc).__name__, None
                answers.append({"kind": kind, "status": status, "retry_after": retry_after, "ms": (time.perf_counter() - started) * 1000})
            await asyncio.sleep(0.25)
    return answers, accepted


async def enqueue_poison(database_url: str, username: str) -> str:
    """A task whose stored image cannot be decoded, as if it had rotted on disk: it bypasses the
    upload checks, so the model replica itself meets the bad bytes."""
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            owner = await session.scalar(select(User.id).where(User.username == username))
            upload = NewInput(data=data, content_type="image/png", width=64, height=64, sha256=hashlib.sha256(data).hexdigest())
            task, _ = await queue.enqueue(
                session, owner_id=owner, upload=upload, max_attempts=3, bounds=Bounds(per_user=10**6, total=10**6),
                idempotency_key=f"poison-{uuid.uuid4().hex}",
            )
            return str(task.id)
    finally:
        await engine.dispose()
