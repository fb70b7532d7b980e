"""Measure how soon a task starts on an idle service: the time from `created_at` (stored when
the upload is accepted) to `started_at` (stored when a dispatcher claims it), both taken by the
service itself.

    python scripts/measure_task_start.py --password "$(cat var/admin-password)"   # against `make run`

Tasks are sent one at a time, each after the previous one finished, so the system is idle.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file from anywhere

from scripts.datagen.dataset import DEFAULT_SEED, Item, sample  # noqa: E402

API = "/api/v1"


def _wait(client: httpx.Client, headers: dict[str, str], task_id: str) -> dict:
    while True:
        task = client.get(f"{API}/tasks/{task_id}", headers=headers).json()
        if task["status"] in ("succeeded", "failed"):
            return task
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()
    with httpx.Client(base_url=args.url, timeout=60) as client:
        login = client.post(f"{API}/auth/token", data={"username": args.username, "password": args.password})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        delays = []
        for i in range(args.tasks):
            image = sample(Item("test", i, DEFAULT_SEED)).encoded
            created = client.post(f"{API}/tasks", files={"image": ("image", image)}, headers=headers).json()
            task = _wait(client, headers, created["id"])
            start = datetime.fromisoformat(task["started_at"]) - datetime.fromisoformat(task["created_at"])
            delays.append(start.total_seconds() * 1000)
            client.delete(f"{API}/tasks/{created['id']}", headers=headers)
            time.sleep(0.3)
    delays.sort()
    p95 = delays[min(len(delays) - 1, round(0.95 * (len(delays) - 1)))]
    print(f"task start on an idle service, {len(delays)} tasks: median {statistics.median(delays):.1f} ms, "
          f"p95 {p95:.1f} ms, max {delays[-1]:.1f} ms")


if __name__ == "__main__":
    main()
