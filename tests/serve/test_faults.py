"""Faults the service survives on a real Ray cluster: a killed model replica, replicas killed
at random, an application restart with work in flight, a flood of submissions, a poison task.
(`scripts/reliability.py` runs the same faults at full scale.)"""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import ray
from ray import serve

from scripts.chaos.faults import enqueue_poison, replica_names
from tests.serve.support import API, APP, QUEUE_BOUND, Service, held_out_image, result_rows, submit_many, wait_for
from tests.support.databases import ADMIN_PASSWORD, run_outside_event_loop


def _replica_actors(deployment: str) -> list:
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
    return [ray.get_actor(n, namespace="serve") for n in names if n.startswith(f"SERVE_REPLICA::{APP}#{deployment}#")]


def _count(http: httpx.Client, token: dict[str, str], status: str) -> int:
    return http.get(f"{API}/tasks", params={"status": status, "limit": 1}, headers=token).json()["total"]


def test_killed_detector_replica_loses_no_task(http: httpx.Client, token: dict[str, str], service: Service) -> None:
    ids = submit_many(service, token, 36)
    running = _count(http, token, "running")
    queued = _count(http, token, "queued")
    [detector] = _replica_actors("Detector")
    ray.kill(detector, no_restart=True)
    started = time.perf_counter()
    assert running > 0, "nothing was running when the replica was killed"
    finished = wait_for(http, token, ids, timeout_s=180)
    statuses = [t["status"] for t in finished.values()]
    retried = sum(t["attempts"] > 1 for t in finished.values())
    print(f"\nkilled the detector with {running} tasks running and {queued} queued: "
          f"{statuses.count('succeeded')}/{len(ids)} succeeded, {retried} needed a second attempt, "
          f"all finished {time.perf_counter() - started:.1f} s after the kill")
    assert statuses == ["succeeded"] * len(ids)
    assert set(result_rows(service.database_url, ids).values()) == {1}  # one result each, none lost or doubled


def test_application_restart_finishes_queued_and_running_tasks(http: httpx.Client, token: dict[str, str], service: Service) -> None:
    ids = submit_many(service, token, 36)
    running, queued = _count(http, token, "running"), _count(http, token, "queued")
    serve.delete(APP)  # the whole application goes away with work queued and running
    service.deploy()
    with service.client() as fresh:
        login = fresh.post(f"{API}/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}).json()
        headers = {"Authorization": f"Bearer {login['access_token']}"}
        finished = wait_for(fresh, headers, ids, timeout_s=180)
    print(f"\napplication deleted with {running} tasks running and {queued} queued; after the restart "
          f"{sum(t['status'] == 'succeeded' for t in finished.values())}/{len(ids)} succeeded")
    assert running + queued > 0
    assert [t["status"] for t in finished.values()] == ["succeeded"] * len(ids)
    assert set(result_rows(service.database_url, ids).values()) == {1}


def test_flood_beyond_the_queue_bound_is_refused_cleanly(http: httpx.Client, service: Service, token: dict[str, str]) -> None:
    """Two batch submits of 32 fill the queue past its bound faster than any model finishes a
    task (each batch is one transaction), then 150 single submits flood in. What does not fit is
    refused with 429 (a batch per image, a single submit with Retry-After); nothing else fails.
    A flood of singles alone reaches the bound only while the models are slower than the
    ingress, which depends on the machine: that made this test pass or fail by chance."""
    image = held_out_image(3).encoded
    batch = [("images", (f"i{i}.png", image)) for i in range(32)]

    async def flood() -> tuple[list[dict], list[httpx.Response]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=service.url, timeout=60, limits=limits) as client:
            batches = []
            for _ in range(2):
                answer = await client.post(f"{API}/batches", files=batch, headers=token)
                assert answer.status_code == 202, answer.text
                batches.append(answer.json())
            singles = await asyncio.gather(*(client.post(f"{API}/tasks", files={"image": ("i", image)}, headers=token) for _ in range(150)))
            return batches, singles

    batches, singles = run_outside_event_loop(asyncio.run, flood())
    items = [item for answer in batches for item in answer["items"]]
    refused_items = [item for item in items if item["status_code"] != 202]
    codes = [r.status_code for r in singles]
    refused = [r for r in singles if r.status_code in (429, 503)]
    print(f"\nflood (bound: {QUEUE_BOUND} unfinished per user): batches {len(items) - len(refused_items)} accepted, "
          f"{len(refused_items)} refused; singles {codes.count(202)} accepted, {len(refused)} refused ({sorted(set(codes))})")
    assert refused_items, "the queue bound was never reached"
    assert {item["status_code"] for item in refused_items} == {429}
    assert all(f"{QUEUE_BOUND}" in item["detail"] for item in refused_items)
    assert set(codes) <= {202, 429, 503}
    assert all(int(r.headers["Retry-After"]) > 0 for r in refused)
    # What was accepted still runs: the next tests start with room in the queue again.
    accepted = [item["task"]["id"] for item in items if item["status_code"] == 202] + [r.json()["id"] for r in singles if r.status_code == 202]
    finished = wait_for(http, token, accepted, timeout_s=240)
    assert [t["status"] for t in finished.values()] == ["succeeded"] * len(accepted)


def test_replicas_killed_at_random_lose_no_task(http: httpx.Client, token: dict[str, str], service: Service) -> None:
    """Chaos, seeded: a detector, a classifier, the dispatcher (with the leases of its batches)
    and the ingress die while work is queued and running; Serve replaces them and every task
    still succeeds, once."""
    ids = submit_many(service, token, 30)
    rng = random.Random(11)
    victims = rng.sample(["Detector", "Classifier", "Dispatcher", "Ingress"], 4)
    for deployment in victims:
        names = replica_names(APP, deployment)
        assert names, f"no {deployment} replica to kill"
        ray.kill(ray.get_actor(rng.choice(names), namespace="serve"), no_restart=True)
        time.sleep(1.5)
    finished = _wait_through_outages(service, token, ids, timeout_s=240)
    retried = sum(t["attempts"] > 1 for t in finished.values())
    print(f"\nkilled {', '.join(victims)}: {len(finished)}/{len(ids)} succeeded, {retried} needed another attempt")
    assert [t["status"] for t in finished.values()] == ["succeeded"] * len(ids)
    assert set(result_rows(service.database_url, ids).values()) == {1}


def test_poison_task_fails_once_with_a_reason_and_blocks_nothing(http: httpx.Client, token: dict[str, str], service: Service) -> None:
    """A stored image the models cannot decode (it bypassed the upload checks, as rotten data
    would) fails on its first attempt with a reason, while the tasks batched with it succeed."""
    poison = run_outside_event_loop(asyncio.run, enqueue_poison(service.database_url, "admin"))
    ids = submit_many(service, token, 12)
    finished = wait_for(http, token, [poison, *ids], timeout_s=120)
    failed = finished.pop(poison)
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert failed["error"].startswith("The image could not be processed: cannot decode the image")
    assert "Traceback" not in failed["error"] and "ray::" not in failed["error"]
    assert [t["status"] for t in finished.values()] == ["succeeded"] * len(ids)


def _wait_through_outages(service: Service, token: dict[str, str], task_ids: list[str], timeout_s: float) -> dict[str, dict]:
    """Like `wait_for`, but a request that fails while the ingress is being replaced is retried."""
    deadline = time.monotonic() + timeout_s
    done: dict[str, dict] = {}
    with service.client() as http:
        while time.monotonic() < deadline and len(done) < len(task_ids):
            for task_id in set(task_ids) - set(done):
                try:
                    response = http.get(f"{API}/tasks/{task_id}", headers=token)
                except httpx.HTTPError:
                    break
                if response.status_code == 200 and response.json()["status"] in ("succeeded", "failed"):
                    done[task_id] = response.json()
            time.sleep(0.3)
    assert len(done) == len(task_ids), f"{len(task_ids) - len(done)} tasks unfinished after {timeout_s} s"
    return done
