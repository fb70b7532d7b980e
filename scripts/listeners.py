"""A thousand open event streams on one ingress while tasks run: the database work the streams
cause, how soon each change reaches them, and the memory each costs. Writes `listeners` into
docs/scale.json (and its table into docs/scale.md, after scripts/scale.py's).

    .venv/bin/python scripts/listeners.py          # about 2 minutes on 2 cores

The service is the app under uvicorn in a process of its own, on a fresh PostgreSQL database,
with its dispatcher; the models' place is taken by a fixed delay (`--work-ms`), so that the cores
go to the streams and their clients, which are measured. This process is the clients: `--users`
users, each with `--listeners / --users` open `GET /api/v1/events` streams (browser tabs), and
the same users submitting `--rate` tasks a second for `--seconds`.

- queries: the statements the service sends to PostgreSQL per second (counted in the service by
  SQLAlchemy) with the streams open, minus the same with no stream open, under the same load;
- latency: from a change's time in the task (`started_at`, `finished_at`) to the event's arrival
  at a client, over every stream that shows it;
- memory: the service's resident memory with the streams open, minus before, per stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
API = "/api/v1"
ADMIN_PASSWORD = "listeners-admin-password-1"


def serve(database_url: str, port: int, work_ms: float, data_dir: Path) -> None:
    """The service process: the app and its dispatcher, and `GET /listeners-stats`."""
    import psutil
    import uvicorn
    from sqlalchemy import event

    from deployments.contract import ImagePayload, ModelVersions, OneByOne, PipelineResult, Scene
    from scripts.scale import NoModels
    from serve_app.api import create_app
    from serve_app.settings import AuthSettings, DatabaseSettings, GeneralSettings, LimitsSettings, Settings

    class FixedDelay:
        """The models' place: every image takes `work_ms`, and finds nothing."""

        async def __call__(self, image: ImagePayload) -> PipelineResult:
            await asyncio.sleep(work_ms / 1000)
            scene = Scene(class_id=0, class_name="none", confidence=1.0, top_k=[])
            return PipelineResult(primitives=[], scene=scene, models=ModelVersions(detector="delay:0", classifier="delay:0"))

        async def run_batch(self, images: list[ImagePayload]) -> list[PipelineResult | Exception]:
            return await OneByOne(self).run_batch(images)

    settings = Settings(
        general=GeneralSettings(data_dir=data_dir),
        database=DatabaseSettings(database_url=database_url),
        auth=AuthSettings(admin_password=ADMIN_PASSWORD, password_hash_time_cost=2, password_hash_memory_kib=19 * 1024),
        limits=LimitsSettings(max_queued_per_user=100_000, max_queued_total=1_000_000),
    )
    app = create_app(settings, models=NoModels(), pipeline=FixedDelay())
    statements = 0

    def counted(*_args) -> None:
        nonlocal statements
        statements += 1

    @app.get("/listeners-stats", include_in_schema=False)
    async def stats() -> dict:
        """Statements sent since the first call, and this process's resident memory."""
        engine = app.state.services.engine.sync_engine
        if not event.contains(engine, "before_cursor_execute", counted):
            event.listen(engine, "before_cursor_execute", counted)
        return {"statements": statements, "rss_bytes": psutil.Process().memory_info().rss}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Clients:
    def __init__(self, url: str, users: int) -> None:
        self.url, self.users = url, users
        self.http = httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=None))
        self.tokens: list[dict[str, str]] = []
        self.latencies: list[float] = []
        self.events = 0

    async def stats(self) -> dict:
        return (await self.http.get("/listeners-stats")).json()

    async def sign_up(self) -> None:
        token = (await self.http.post(f"{API}/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})).json()
        admin = {"Authorization": f"Bearer {token['access_token']}"}
        for i in range(self.users):
            name, password = f"tab-user-{i}", f"tab-user-password-{i}"
            assert (await self.http.post(f"{API}/users", json={"username": name, "password": password}, headers=admin)).status_code == 201
            token = (await self.http.post(f"{API}/auth/token", data={"username": name, "password": password})).json()
            self.tokens.append({"Authorization": f"Bearer {token['access_token']}"})

    async def listen(self, token: dict[str, str], opened: asyncio.Event, ready: list[int]) -> None:
        """One browser tab: the user's stream, each task event timed against the change it shows."""
        async with self.http.stream("GET", f"{API}/events", headers=token, timeout=None) as response:
            ready.append(1)
            opened.set()
            name = None
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    name = line.removeprefix("event:").strip()
                elif line.startswith("data:") and name == "task":
                    arrived = time.time()
                    task = json.loads(line.removeprefix("data:"))
                    at = {"running": task["started_at"], "succeeded": task["finished_at"]}.get(task["status"])
                    if at is not None and task["attempts"] >= 1:
                        changed = datetime.fromisoformat(at).timestamp()
                        if arrived - changed < 60:  # not the snapshot of an old task
                            self.latencies.append(arrived - changed)
                    self.events += 1

    async def load(self, rate: float, seconds: float, image: bytes) -> int:
        """`rate` submits a second, by the users in turn; returns how many were accepted."""
        accepted, started = 0, time.perf_counter()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            files = {"image": ("a.png", image, "image/png")}
            response = await self.http.post(f"{API}/tasks", files=files, headers=self.tokens[n % self.users])
            accepted += response.status_code == 202
        return accepted

    async def measured_load(self, rate: float, seconds: float, image: bytes) -> dict:
        before = await self.stats()
        started = time.perf_counter()
        accepted = await self.load(rate, seconds, image)
        await asyncio.sleep(1.0)  # the last tasks finish
        after = await self.stats()
        return {"accepted": accepted, "statements_per_s": round((after["statements"] - before["statements"]) / (time.perf_counter() - started), 1)}


async def run(args: argparse.Namespace, url: str) -> dict:
    from scripts.large_table.fill import _images
    from scripts.scale import summary

    image = _images()[0][0]
    clients = Clients(url, args.users)
    await clients.stats()  # counting starts
    await clients.sign_up()
    without = await clients.measured_load(args.rate, args.seconds, image)
    rss_before = (await clients.stats())["rss_bytes"]
    ready: list[int] = []
    tabs = []
    for i in range(args.listeners):
        opened = asyncio.Event()
        tabs.append(asyncio.create_task(clients.listen(clients.tokens[i % args.users], opened, ready)))
        await opened.wait()
    await asyncio.sleep(2.0)  # every stream has read its snapshot
    rss_open = (await clients.stats())["rss_bytes"]
    clients.latencies.clear()
    with_streams = await clients.measured_load(args.rate, args.seconds, image)
    for tab in tabs:
        tab.cancel()
    await asyncio.gather(*tabs, return_exceptions=True)
    await clients.http.aclose()
    latency = summary(clients.latencies) if clients.latencies else {"samples": 0, "p50_ms": None, "p99_ms": None}
    return {
        "listeners": len(ready),
        "users": args.users,
        "tasks_per_s": args.rate,
        "seconds": args.seconds,
        "statements_per_s_without_streams": without["statements_per_s"],
        "statements_per_s_with_streams": with_streams["statements_per_s"],
        "queries_per_s": round(with_streams["statements_per_s"] - without["statements_per_s"], 1),
        "events_timed": latency["samples"],
        "event_p50_ms": latency["p50_ms"],
        "event_p99_ms": latency["p99_ms"],
        "kb_per_listener": round((rss_open - rss_before) / 1024 / max(1, len(ready)), 1),
        "accepted": [without["accepted"], with_streams["accepted"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_listeners")
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="tasks submitted per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--work-ms", type=float, default=50.0, help="each image's time in place of the models")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "listeners")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "scale.json")
    parser.add_argument("--serve-on-port", type=int, help=argparse.SUPPRESS)  # the service process
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.serve_on_port:
        serve(args.database_url, args.serve_on_port, args.work_ms, args.data_dir)
        return

    from db import migrate
    from db.engine import recreate_postgres_database

    asyncio.run(recreate_postgres_database(args.database_url))
    migrate.upgrade(args.database_url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    service = subprocess.Popen([sys.executable, __file__, "--serve-on-port", str(port), *sys.argv[1:]], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or service.poll() is not None:
                raise SystemExit("the service did not start")
            time.sleep(0.2)
        result = {"command": " ".join(["scripts/listeners.py", *sys.argv[1:]]), **asyncio.run(run(args, url))}
    finally:
        service.terminate()
        service.wait(30)
    print(json.dumps(result, indent=1))
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report["listeners"] = result
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if "large_table" in report:  # scripts/scale.py's figures are there: the doc shows both
        from scripts.scale import write_markdown

        write_markdown(report, args.out.with_suffix(".md"))
    print(f"wrote `listeners` into {args.out}")


if __name__ == "__main__":
    main()
