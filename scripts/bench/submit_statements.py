"""CPU per submit of the Ingress's database work, through SQLAlchemy and through db/direct.py.

    python scripts/bench/submit_statements.py [--submits 500] [--repeat 3]

What the Ingress does for a client that submits one image and waits for its result: read the
caller's user, store the task with its image (bounds checked), and read a finished task's result
(3 primitives). `general` is the code SQLite runs (SQLAlchemy: the user and the store in the
request's session, the result in an autocommit read); `direct` is PostgreSQL's default
(`PRIMSCENE_DB_DIRECT_STATEMENTS`). Both run in one process on one fresh PostgreSQL database, in
turns, so that the machine's drift falls on each alike; prints the CPU milliseconds per submit of
each step. A full `serve run` (scripts/quick_service.py) shows what the difference is worth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1].parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete  # noqa: E402

from db import migrate, queue, tasks, users  # noqa: E402
from db.direct import DirectStatements  # noqa: E402
from db.engine import create_engine, drop_postgres_database, read_session_factory, recreate_postgres_database, session_factory  # noqa: E402
from db.models import Task  # noqa: E402

STEPS = ("user", "store", "result")
PRIMITIVE = {"class_id": 0, "class_name": "circle", "x": 0.5, "y": 0.5, "width": 0.2, "height": 0.2, "rotation": 0.0, "confidence": 0.9}
SCENE = {"class_id": 0, "class_name": "snowman", "confidence": 0.9, "top_k": [{"class_name": "snowman", "confidence": 0.9}],
         "detector_model": "d", "classifier_model": "c"}


async def run(database_url: str, submits: int, repeat: int) -> None:
    engine = create_engine(database_url)
    sessions, reads = session_factory(engine), read_session_factory(engine)
    direct = await DirectStatements.open(database_url, max_size=2)
    async with sessions() as session:
        owner = await users.create(session, username="bench", hashed_password="x")
    upload = queue.NewInput(data=b"\xff\xd8\xff" + bytes(30_000), content_type="image/jpeg", width=640, height=640, sha256="0" * 64)
    bounds = queue.Bounds(per_user=10**6, total=10**6)
    async with sessions() as session:
        [done] = await queue.enqueue_many(session, owner_id=owner.id, uploads=[upload], max_attempts=3, bounds=bounds)
    async with sessions() as session:
        [claim] = await queue.claim(session, worker_id="bench", limit=1, lease_s=30)
    async with sessions() as session:
        await queue.finish_many(session, [queue.Outcome(claim, [PRIMITIVE] * 3, SCENE)])
    assert not isinstance(done, Exception)

    async def general(spent: dict[str, float]) -> None:
        started = time.process_time()
        async with sessions() as session:  # the request's session: the user, then the store
            await users.get_by_id(session, owner.id)
            user_read = time.process_time()
            await queue.enqueue(session, owner_id=owner.id, upload=upload, max_attempts=3, bounds=bounds)
        stored = time.process_time()
        async with reads() as session:
            await tasks.get_results(session, [done.id])
        _add(spent, started, user_read, stored, time.process_time())

    async def through_direct(spent: dict[str, float]) -> None:
        started = time.process_time()
        await direct.user(owner.id)
        user_read = time.process_time()
        await direct.enqueue(queue.new_task(owner.id, 3), upload, bounds)
        stored = time.process_time()
        await direct.results([done.id])
        _add(spent, started, user_read, stored, time.process_time())

    for _ in range(repeat):
        for name, submit in (("general", general), ("direct", through_direct)):
            for _ in range(20):  # warm up: statement caches, pools
                await submit({})
            spent = dict.fromkeys(STEPS, 0.0)
            for _ in range(submits):
                await submit(spent)
            async with sessions() as session:  # the queue as short as a served one's, for the bounds' count
                await session.execute(delete(Task).where(Task.id != done.id))
                await session.commit()
            per_submit = {step: round(1000 * seconds / submits, 3) for step, seconds in spent.items()}
            print(json.dumps({"path": name, "cpu_ms_per_submit": {**per_submit, "total": round(sum(per_submit.values()), 3)}}), flush=True)
    await direct.close()
    await engine.dispose()


def _add(spent: dict[str, float], started: float, user_read: float, stored: float, finished: float) -> None:
    if spent:
        spent["user"] += user_read - started
        spent["store"] += stored - user_read
        spent["result"] += finished - stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submits", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=f"postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_submit_{uuid.uuid4().hex[:6]}")
    args = parser.parse_args()
    asyncio.run(recreate_postgres_database(args.database_url))
    migrate.upgrade(args.database_url)
    try:
        asyncio.run(run(args.database_url, args.submits, args.repeat))
    finally:
        asyncio.run(drop_postgres_database(args.database_url))


if __name__ == "__main__":
    main()
