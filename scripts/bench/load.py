"""Concurrent HTTP clients, as users would drive Primscene (and the naive peer)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime

import httpx
import numpy as np

API = "/api/v1"
TERMINAL = {"succeeded", "failed"}


def percentiles(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {}
    p50, p95, p99 = np.percentile(values_ms, [50, 95, 99])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "p99": round(float(p99), 1), "max": round(max(values_ms), 1)}


@dataclass
class LoadResult:
    images: int
    clients: int
    seconds: float
    images_per_s: float
    submit_ms: dict[str, float]
    completion_ms: dict[str, float]
    succeeded: int
    failed: dict[str, int] = field(default_factory=dict)  # why → how many
    probe_submit_ms: dict[str, float] = field(default_factory=dict)
    probe_while_saturated: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


async def create_users(url: str, admin_password: str, count: int, password: str) -> list[str]:
    """`count` users (created by the administrator through the API); their bearer tokens."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        admin = await _login(http, "admin", admin_password)
        tokens = []
        for i in range(count):
            name = f"bench-{i:03d}"
            response = await http.post(f"{API}/users", json={"username": name, "password": password}, headers=admin)
            if response.status_code not in (201, 409):
                response.raise_for_status()
            tokens.append((await _login(http, name, password))["Authorization"])
        return tokens


async def _login(http: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    response = await http.post(f"{API}/auth/token", data={"username": username, "password": password})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def drive_service(
    url: str, tokens: list[str], images: list[bytes], *, poll_s: float = 2.0, probes: int = 0, timeout_s: float = 900
) -> LoadResult:
    """Each client (one user each) submits its share of `images` one after another, then polls
    its task list until every task has finished. Throughput and completion latency come from the
    service's own timestamps (accepted → finished), so the polling interval does not blur them.

    With `probes`, once the flood is submitted and the models are saturated by it, one more
    client submits `probes` images at 10 per second: how long accepting work takes while the
    pipeline is busy (the flood's own submit times measure how fast the ingress drains a burst
    of 32 clients at once, a different question)."""
    clients = len(tokens)
    submit_ms: list[float] = []
    probe_ms: list[float] = []
    failures: Counter[str] = Counter()
    finished: list[dict] = []
    submitting = [clients]
    flood_submitted = asyncio.Event()

    async def client(token: str, share: list[bytes]) -> None:
        headers = {"Authorization": token}
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as http:
            pending = set()
            for image in share:
                started = time.perf_counter()
                try:
                    response = await http.post(f"{API}/tasks", files={"image": ("image.jpg", image, "image/jpeg")})
                except httpx.HTTPError as exc:
                    failures[f"submit: {type(exc).__name__}"] += 1
                    continue
                submit_ms.append((time.perf_counter() - started) * 1000)
                if response.status_code != 202:
                    failures[f"submit: HTTP {response.status_code}"] += 1
                    continue
                pending.add(response.json()["id"])
            submitting[0] -= 1
            if not submitting[0]:
                flood_submitted.set()
            deadline = time.monotonic() + timeout_s
            while pending and time.monotonic() < deadline:
                await asyncio.sleep(poll_s)
                for task in await _own_tasks(http):
                    if task["id"] in pending and task["status"] in TERMINAL:
                        pending.discard(task["id"])
                        finished.append(task)
            failures["not finished in time"] += len(pending)

    async def probe() -> None:
        await flood_submitted.wait()
        async with httpx.AsyncClient(base_url=url, timeout=60, headers={"Authorization": tokens[0]}) as http:
            for image in images[:probes]:
                started = time.perf_counter()
                response = await http.post(f"{API}/tasks", files={"image": ("image.jpg", image, "image/jpeg")})
                if response.status_code == 202:
                    probe_ms.append((time.perf_counter() - started) * 1000)
                else:
                    failures[f"probe: HTTP {response.status_code}"] += 1
                await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - started)))
        probe_ended[0] = time.time()

    probe_ended = [0.0]
    shares = [images[i::clients] for i in range(clients)]
    started = time.perf_counter()
    await asyncio.gather(probe(), *(client(token, share) for token, share in zip(tokens, shares)))
    wall = time.perf_counter() - started
    succeeded = [t for t in finished if t["status"] == "succeeded"]
    failures["task failed"] += len(finished) - len(succeeded)
    accepted = [_time(t["created_at"]) for t in finished]
    done = [_time(t["finished_at"]) for t in finished]
    span = (max(done) - min(accepted)).total_seconds() if finished else wall
    return LoadResult(
        images=len(images), clients=clients, seconds=round(span, 2), images_per_s=round(len(succeeded) / span, 2),
        submit_ms=percentiles(submit_ms),
        completion_ms=percentiles([(_time(t["finished_at"]) - _time(t["created_at"])).total_seconds() * 1000 for t in finished]),
        succeeded=len(succeeded), failed={k: v for k, v in failures.items() if v},
        probe_submit_ms=percentiles(probe_ms),
        # The probes ran while the pipeline was saturated if the flood was still unfinished after them.
        probe_while_saturated=bool(probes) and bool(done) and max(done).timestamp() > probe_ended[0],
    )


async def _own_tasks(http: httpx.AsyncClient) -> list[dict]:
    tasks, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await http.get(f"{API}/tasks", params=params)).raise_for_status().json()
        tasks += page["items"]
        cursor = page["next"]
        if cursor is None:
            return tasks


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def task_start_ms(url: str, token: str, images: list[bytes]) -> dict[str, float]:
    """On an idle service: accepted → claimed by the dispatcher (the service's timestamps),
    one task at a time, each sent after the previous one finished."""
    delays = []
    async with httpx.AsyncClient(base_url=url, timeout=60, headers={"Authorization": token}) as http:
        for image in images:
            task = (await http.post(f"{API}/tasks", files={"image": ("image.jpg", image, "image/jpeg")})).raise_for_status().json()
            while task["status"] not in TERMINAL:
                await asyncio.sleep(0.05)
                task = (await http.get(f"{API}/tasks/{task['id']}")).raise_for_status().json()
            delays.append((_time(task["started_at"]) - _time(task["created_at"])).total_seconds() * 1000)
    return percentiles(delays)


async def drive_naive(url: str, clients: int, images: list[bytes], *, timeout_s: float = 60) -> LoadResult:
    """Each client posts its share of images to the peer's synchronous endpoint, one after
    another, waiting for each answer; a request that takes longer than `timeout_s` fails."""
    latencies: list[float] = []
    failures: Counter[str] = Counter()

    async def client(share: list[bytes]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=timeout_s) as http:
            for image in share:
                started = time.perf_counter()
                try:
                    response = await http.post("/predict", files={"image": ("image.jpg", image, "image/jpeg")})
                except httpx.HTTPError as exc:
                    failures[type(exc).__name__] += 1
                    continue
                if response.status_code != 200:
                    failures[f"HTTP {response.status_code}"] += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client(images[i::clients]) for i in range(clients)))
    wall = time.perf_counter() - started
    return LoadResult(
        images=len(images), clients=clients, seconds=round(wall, 2), images_per_s=round(len(latencies) / wall, 2),
        submit_ms=percentiles(latencies), completion_ms=percentiles(latencies), succeeded=len(latencies),
        failed={k: v for k, v in failures.items() if v},
    )


async def drive_waiting(
    url: str, tokens: list[str], images: list[bytes], *, batch: int = 1, wait_s: float = 60, timeout_s: float = 900, probes: int = 0
) -> LoadResult:
    """Each client (one user each) sends its share of `images`, `batch` at a time, and waits for
    their results before sending the next: one image per `POST /tasks`, or `batch` images per
    `POST /batches`, each with `Prefer: wait` so that one request brings the results back
    (a task still unfinished when the wait runs out is followed with `GET …?wait=`). Images/s =
    results received over the clients' own wall time, as for the naive peer.

    With `probes`, once the load has run 3 s, one more client submits `probes` images at 10 per
    second without waiting: how long accepting an upload takes while the models are saturated.
    The probe runs in a process of its own, so that the load clients' event loop (this one) does
    not add its own delays to the figure."""
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    finished: list[dict] = []
    prefer = {"Prefer": f"wait={wait_s:g}"}

    async def client(token: str, share: list[bytes]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=wait_s + 30, headers={"Authorization": token}) as http:
            for start in range(0, len(share), batch):
                group = share[start : start + batch]
                started = time.perf_counter()
                try:
                    tasks = await _submit_and_wait(http, group, prefer, batch > 1, failures)
                    for task in tasks:
                        while task["status"] not in TERMINAL and time.perf_counter() - started < timeout_s:
                            task = (await http.get(f"{API}/tasks/{task['id']}", params={"wait": wait_s})).raise_for_status().json()
                        finished.append(task)
                except httpx.HTTPError as exc:
                    failures[f"{type(exc).__name__}"] += len(group)
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

    load_ended = [0.0]

    async def load() -> None:
        await asyncio.gather(*(client(token, images[i :: len(tokens)]) for i, token in enumerate(tokens)))
        load_ended[0] = time.perf_counter()

    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        probing = asyncio.get_running_loop().run_in_executor(pool, run_probe, url, tokens[0], images[:probes], started + 3) if probes else None
        await load()
        probe_ms, probe_failures, probe_ended = await probing if probing else ([], {}, 0.0)
    failures.update(probe_failures)
    wall = load_ended[0] - started
    succeeded = [t for t in finished if t["status"] == "succeeded" and t.get("result")]
    failures["task failed or without result"] += len(finished) - len(succeeded)
    return LoadResult(
        images=len(images), clients=len(tokens), seconds=round(wall, 2), images_per_s=round(len(succeeded) / wall, 2),
        submit_ms=percentiles(latencies), completion_ms=percentiles(latencies), succeeded=len(succeeded),
        failed={k: v for k, v in failures.items() if v},
        probe_submit_ms=percentiles(probe_ms),
        # Saturated: the load was still running when the last probe was sent.
        probe_while_saturated=bool(probes) and started + wall > probe_ended > 0,
    )


def run_probe(url: str, token: str, images: list[bytes], start_at: float) -> tuple[list[float], dict[str, int], float]:
    """The probe client, in its own process: from `start_at` (`time.perf_counter` is
    CLOCK_MONOTONIC, the same clock in every process) it submits each image without waiting, at
    10 per second. Returns the milliseconds each accepted submit took, the refusals, and when it ended."""
    return asyncio.run(_probe(url, token, images, start_at))


async def _probe(url: str, token: str, images: list[bytes], start_at: float) -> tuple[list[float], dict[str, int], float]:
    probe_ms: list[float] = []
    failures: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, headers={"Authorization": token}) as http:
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        for image in images:
            sent = time.perf_counter()
            response = await http.post(f"{API}/tasks", files={"image": ("image.jpg", image, "image/jpeg")})
            if response.status_code == 202:
                probe_ms.append((time.perf_counter() - sent) * 1000)
            else:
                failures[f"probe: HTTP {response.status_code}"] += 1
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - sent)))
    return probe_ms, dict(failures), time.perf_counter()


async def _submit_and_wait(http: httpx.AsyncClient, group: list[bytes], prefer: dict, as_batch: bool, failures: Counter[str]) -> list[dict]:
    if not as_batch:
        response = await http.post(f"{API}/tasks", files={"image": ("image.jpg", group[0], "image/jpeg")}, headers=prefer)
        if response.status_code not in (200, 202):
            failures[f"submit: HTTP {response.status_code}"] += 1
            return []
        return [response.json()]
    files = [("images", (f"image-{i}.jpg", data, "image/jpeg")) for i, data in enumerate(group)]
    response = await http.post(f"{API}/batches", files=files, headers=prefer)
    if response.status_code not in (200, 202):
        failures[f"batch submit: HTTP {response.status_code}"] += len(group)
        return []
    items = response.json()["items"]
    for item in items:
        if item["task"] is None:
            failures[f"image refused: HTTP {item['status_code']}"] += 1
    return [item["task"] for item in items if item["task"] is not None]
