"""CPU per call of the dispatcher's queue statements, for A/B runs of lean-SQL changes.

    python scripts/bench/queue_statements.py [--batches 300] [--repeat 3] [--compare <worktree> ...]

Each checkout runs, in a process of its own on a fresh PostgreSQL database at its own schema,
the cycle a dispatcher goes through per batch of 8: claim, load the images, extend the leases,
store the results (3 primitives each). This checkout runs it twice, through SQLAlchemy
(`db.queue`, as on SQLite) and through `db/direct.py` (PostgreSQL's default; the claim there
loads the images in the same statement). Prints the process's CPU milliseconds per call of each
step, one run after another in turns (A, B, A, B, ...), so that the machine's drift falls on
each alike. A full `serve run` (scripts/quick_service.py, scripts/benchmark.py) shows what a
change is worth to the service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, os.environ.get("PYTHONPATH") or str(ROOT))

BATCH = 8
PRIMITIVE = {"class_id": 0, "class_name": "circle", "x": 0.5, "y": 0.5, "width": 0.2, "height": 0.2, "rotation": 0.0, "confidence": 0.9}
SCENE = {"class_id": 0, "class_name": "snowman", "confidence": 0.9, "top_k": [], "detector_model": "d", "classifier_model": "c"}


async def measure(database_url: str, batches: int, direct: bool) -> dict[str, float]:
    """CPU ms per call of each step over `batches` cycles (after 20 to warm up)."""
    from db import queue, users
    from db.engine import create_engine, session_factory

    engine = create_engine(database_url)
    sessions = session_factory(engine)
    if direct:
        from db.direct import DirectStatements

        statements = await DirectStatements.open(database_url, max_size=2)
    async with sessions() as session:
        owner = await users.create(session, username=f"u{uuid.uuid4().hex[:8]}", hashed_password="x")
    upload = queue.NewInput(data=b"\xff\xd8\xff" + bytes(30_000), content_type="image/jpeg", width=640, height=640, sha256="0" * 64)
    bounds = queue.Bounds(per_user=10**6, total=10**6)
    spent: dict[str, float] = {"claim": 0.0, "load_inputs": 0.0, "heartbeat_many": 0.0, "finish_many": 0.0}

    async def timed(step: str, call: Callable[[AsyncSession], Awaitable[T]], counted: bool) -> T:
        started = time.process_time()
        async with sessions() as session:
            result = await call(session)
        if counted:
            spent[step] += time.process_time() - started
        return result

    warm_up = 20
    for cycle in range(warm_up + batches):
        async with sessions() as session:
            await queue.enqueue_many(session, owner_id=owner.id, uploads=[upload] * BATCH, max_attempts=3, bounds=bounds)
        counted = cycle >= warm_up
        if direct:
            started = time.process_time()
            claims, _ = await statements.claim(worker_id="bench", limit=BATCH, lease_s=30)
            spent["claim"] += (time.process_time() - started) * counted
        else:
            claims = await timed("claim", partial(queue.claim, worker_id="bench", limit=BATCH, lease_s=30), counted)
            await timed("load_inputs", partial(queue.load_inputs, task_ids=[claim.task_id for claim in claims]), counted)
        await timed("heartbeat_many", partial(queue.heartbeat_many, claims=claims, lease_s=30), counted)
        outcomes = [queue.Outcome(claim, [PRIMITIVE] * 3, SCENE) for claim in claims]
        if direct:
            started = time.process_time()
            assert len(await statements.finish_many(outcomes)) == BATCH
            spent["finish_many"] += (time.process_time() - started) * counted
        else:
            await timed("finish_many", partial(queue.finish_many, outcomes=outcomes), counted)
    if direct:
        await statements.close()
    await engine.dispose()
    return {step: round(1000 * seconds / batches, 3) for step, seconds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", type=Path, action="append", default=[], help="another checkout, run in turn with this one")
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_queue_statements")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child process: measure on this database
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)  # the child: through db/direct.py
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.measure, args.batches, args.direct))))
        return
    from db.engine import recreate_postgres_database

    runs = [(ROOT, False), (ROOT, True), *((path.resolve(), False) for path in args.compare)]
    for _ in range(args.repeat):
        for number, (checkout, direct) in enumerate(runs):
            database_url = f"{args.database_url}_{number}"
            asyncio.run(recreate_postgres_database(database_url))
            env = {**os.environ, "PYTHONPATH": str(checkout)}
            subprocess.run([sys.executable, "-c", f"from db import migrate; migrate.upgrade({database_url!r})"], env=env, cwd=checkout, check=True)
            command = [sys.executable, str(ROOT / "scripts/bench/queue_statements.py"), "--measure", database_url, "--batches", str(args.batches)]
            measured = subprocess.run(command + ["--direct"] * direct, env=env, cwd=checkout, check=True, capture_output=True, text=True)
            per_call = json.loads(measured.stdout.splitlines()[-1])
            row = {"checkout": str(checkout), "path": "direct" if direct else "general", "cpu_ms_per_call": per_call}
            print(json.dumps({**row, "cpu_ms_per_batch": round(sum(per_call.values()), 3)}), flush=True)


if __name__ == "__main__":
    main()
