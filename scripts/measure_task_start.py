"""Measure how soon a task starts on an idle service: the time from `created_at` (stored when
the upload is accepted) to `started_at` (stored when a dispatcher claims it), both taken by the
service itself.

    python scripts/measure_task_start.py --password "$(cat var/admin-password)"   # against `make run`

Tasks are sent one at a time, each after the previous one finished, so the system is idle.
(`scripts/benchmark.py` measures the same on PostgreSQL as part of its run.)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file from anywhere

from scripts.bench.load import API, task_start_ms
from scripts.datagen.dataset import DEFAULT_SEED, Item, sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()
    login = httpx.post(f"{args.url}{API}/auth/token", data={"username": args.username, "password": args.password}, timeout=60)
    login.raise_for_status()
    images = [sample(Item("test", i, DEFAULT_SEED)).encoded for i in range(args.tasks)]
    delays = asyncio.run(task_start_ms(args.url, f"Bearer {login.json()['access_token']}", images))
    print(f"task start on an idle service, {args.tasks} tasks (ms): {delays}")


if __name__ == "__main__":
    main()
