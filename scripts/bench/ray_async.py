"""Helpers for the Ray Serve async inference peer (scripts/bench/ray_async_peer.py): its Redis,
its Serve config, and the clients that drive it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import redis
import yaml

from scripts.bench.load import LoadResult, percentiles

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
DEFAULT_DB = 5


def _client(db: int = 0) -> redis.Redis:
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5, socket_connect_timeout=2)


def _answers() -> bool:
    try:
        return bool(_client().ping())
    except redis.RedisError:
        return False


def ensure_redis(timeout_s: float = 30) -> None:
    """A Redis server answering at 127.0.0.1:6379: the one running, else Debian's redis-server
    started as a daemon (installed with apt-get when missing)."""
    if _answers():
        return
    if shutil.which("redis-server") is None:
        subprocess.run(["apt-get", "install", "-y", "redis-server"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", REDIS_HOST, "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"],
        check=True, stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout_s
    while not _answers():
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis-server does not answer at {REDIS_HOST}:{REDIS_PORT}")
        time.sleep(0.2)


def flush(db: int = DEFAULT_DB) -> None:
    """Empty the peer's Redis db (queue, results) before a run."""
    _client(db).flushdb()


def serve_config(
    path: Path,
    port: int,
    *,
    db: int = DEFAULT_DB,
    consumer_replicas: int = 2,
    consumer_concurrency: int = 1,
    consumer_cpus: float = 0.7,
    ingress_cpus: float = 0.2,
    model_threads: int = 1,
    model_niceness: int = 10,
    prefetch: int = 1,
) -> Path:
    """A Serve config for the peer on `port` (defaults: the best setting measured, see the
    peer's docstring). `consumer_cpus` is per replica; all of them with the ingress's should
    stay within what the machine can give (1.6 of 2 cores here, leaving Ray's own processes room)."""
    config = {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": port},
        "applications": [{
            "name": "ray_async_peer",
            "route_prefix": "/",
            "import_path": "scripts.bench.ray_async_peer:build_app",
            "args": {
                "redis": f"redis://{REDIS_HOST}:{REDIS_PORT}", "db": db, "model_threads": model_threads,
                "model_niceness": model_niceness, "prefetch": prefetch,
            },
            "deployments": [
                {"name": "AsyncIngress", "num_replicas": 1, "max_ongoing_requests": 256, "ray_actor_options": {"num_cpus": ingress_cpus}},
                {
                    "name": "AsyncConsumer", "num_replicas": consumer_replicas,
                    # The Celery worker's thread count per replica (task_consumer reads it).
                    "max_ongoing_requests": consumer_concurrency,
                    "ray_actor_options": {"num_cpus": consumer_cpus},
                },
            ],
        }],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def drive(url: str, clients: int, images: list[bytes], *, poll_s: float = 0.05, timeout_s: float = 300) -> LoadResult:
    """`clients` closed-loop clients, each with its share `images[i::clients]`: post an image,
    poll `GET /tasks/{id}` every `poll_s` until it has finished (or `timeout_s` has passed),
    then the next one. Images/s: results received over the clients' wall time. Submit latency:
    the POST; completion latency: POST sent → finished status read (so it includes up to one
    polling interval)."""
    submit_ms: list[float] = []
    completion_ms: list[float] = []
    failures: Counter[str] = Counter()
    succeeded = [0]

    async def client(share: list[bytes]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for image in share:
                started = time.perf_counter()
                try:
                    response = await http.post("/tasks", files={"image": ("image.jpg", image, "image/jpeg")})
                except httpx.HTTPError as exc:
                    failures[f"submit: {type(exc).__name__}"] += 1
                    continue
                if response.status_code != 202:
                    failures[f"submit: HTTP {response.status_code}"] += 1
                    continue
                submit_ms.append((time.perf_counter() - started) * 1000)
                task_id = response.json()["id"]
                deadline = started + timeout_s
                while True:
                    await asyncio.sleep(poll_s)
                    if time.perf_counter() > deadline:
                        failures["not finished in time"] += 1
                        break
                    try:
                        polled = await http.get(f"/tasks/{task_id}")
                    except httpx.HTTPError as exc:
                        failures[f"poll: {type(exc).__name__}"] += 1  # counted, polling goes on
                        continue
                    if polled.status_code != 200:
                        failures[f"poll: HTTP {polled.status_code}"] += 1
                        continue
                    status = polled.json()["status"]
                    if status == "succeeded":
                        completion_ms.append((time.perf_counter() - started) * 1000)
                        succeeded[0] += 1
                        break
                    if status == "failed":
                        failures["task failed"] += 1
                        break

    started = time.perf_counter()
    await asyncio.gather(*(client(images[i::clients]) for i in range(clients)))
    wall = time.perf_counter() - started
    return LoadResult(
        images=len(images), clients=clients, seconds=round(wall, 2), images_per_s=round(succeeded[0] / wall, 2),
        submit_ms=percentiles(submit_ms), completion_ms=percentiles(completion_ms), succeeded=succeeded[0],
        failed={k: v for k, v in failures.items() if v},
    )
