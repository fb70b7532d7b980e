"""Helpers for driving the running service over HTTP."""

from __future__ import annotations

import time

import httpx

from scripts.datagen.dataset import DEFAULT_SEED, Item, sample

API = "/api/v1"


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
