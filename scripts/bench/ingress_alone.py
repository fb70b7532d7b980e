"""The Ingress's own CPU per task, without Ray or the models: for A/B runs of hot-path changes.

    python scripts/bench/ingress_alone.py --images 2000 [--repeat 3]

Runs the FastAPI app alone under uvicorn (as the Ingress replica serves it: no dispatcher of
its own) and, in a second process, a dispatcher whose pipeline is the tests' bounding-box
stand-in, both on a fresh PostgreSQL database. 32 clients (one user each) send one image at a
time with `Prefer: wait`, as `scripts/benchmark.py` does. Prints the ingress process's CPU
milliseconds per task for each repeat: a figure that varies far less than a full `serve run`,
since no model shares the cores with it in bursts. `scripts/benchmark.py` stays the run of record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, os.environ.get("PYTHONPATH") or str(ROOT))

from scripts.bench import load  # noqa: E402
from scripts.bench.processes import Server  # noqa: E402

ADMIN_PASSWORD = "ingress-alone-admin"
USER_PASSWORD = "ingress-alone-user-password"
BIN = Path(sys.executable).parent


def ingress_app():  # uvicorn --factory
    from serve_app.api import create_app
    from tests.support.pipeline import BoundingBoxCatalog

    return create_app(models=BoundingBoxCatalog())


async def run_dispatcher() -> None:
    from db.engine import create_engine, session_factory
    from serve_app.dispatching import running_dispatcher
    from serve_app.settings import Settings
    from tests.support.pipeline import BoundingBoxPipeline

    settings = Settings()
    engine = create_engine(settings.database_url)
    async with running_dispatcher(settings, session_factory(engine), BoundingBoxPipeline()):
        await asyncio.Event().wait()


def main() -> None:
    from db.engine import recreate_postgres_database
    from scripts.benchmark import make_images

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--compare", type=Path, action="append", default=[],
        help="another checkout (e.g. a `git worktree` of an older commit) whose app is run in turn with this one's",
    )
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_ingress_alone")
    parser.add_argument("--port", type=int, default=8030)
    args = parser.parse_args()
    images = make_images(min(args.images, 400))
    images = (images * (args.images // len(images) + 1))[: args.images]
    url = f"http://127.0.0.1:{args.port}"
    checkouts = [ROOT, *(path.resolve() for path in args.compare)]
    with tempfile.TemporaryDirectory(prefix="primscene-ingress-") as tmp:
        envs = []
        for number, checkout in enumerate(checkouts):  # each on a database of its own, at its own schema
            database_url = f"{args.database_url}_{number}"
            asyncio.run(recreate_postgres_database(database_url))
            subprocess.run(
                [sys.executable, "-c", f"from db import migrate; migrate.upgrade({database_url!r})"],
                env={**os.environ, "PYTHONPATH": str(checkout)}, cwd=checkout, check=True,
            )
            envs.append({
                "PRIMSCENE_DATABASE_URL": database_url, "PRIMSCENE_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "PRIMSCENE_MAX_QUEUED_PER_USER": "1000", "PYTHONPATH": str(checkout), "PRIMSCENE_DATA_DIR": f"{tmp}/{number}",
            })
        tokens: dict[Path, list[str]] = {}
        for _ in range(args.repeat):
            for checkout, env in zip(checkouts, envs):  # in turn, so that the machine's drift hits each alike
                log = Path(tmp) / "ingress.log"
                dispatcher = Server(
                    [sys.executable, "scripts/bench/ingress_alone.py", "--dispatcher"], env=env, log=log.with_name("dispatcher.log"), cwd=checkout,
                )
                ingress = Server(
                    [str(BIN / "uvicorn"), "--factory", "scripts.bench.ingress_alone:ingress_app", "--port", str(args.port),
                     "--no-access-log", "--log-level", "warning"],
                    env=env, log=log, cwd=checkout,
                )
                try:
                    ingress.wait_until_ready(f"{url}/readyz")
                    if checkout not in tokens:
                        tokens[checkout] = asyncio.run(load.create_users(url, ADMIN_PASSWORD, args.clients, USER_PASSWORD))
                    asyncio.run(load.drive_waiting(url, tokens[checkout], images[: 4 * args.clients]))  # warm-up
                    before = _cpu(ingress.process.pid), _cpu(dispatcher.process.pid)
                    result = asyncio.run(load.drive_waiting(url, tokens[checkout], images))
                    after = _cpu(ingress.process.pid), _cpu(dispatcher.process.pid)
                finally:
                    ingress.stop()
                    dispatcher.stop()
                print(json.dumps({
                    "checkout": str(checkout),
                    "images_per_s": result.images_per_s,
                    "ingress_cpu_ms_per_task": round((after[0] - before[0]) * 1000 / max(result.succeeded, 1), 2),
                    "dispatcher_cpu_ms_per_task": round((after[1] - before[1]) * 1000 / max(result.succeeded, 1), 2),
                    "failed": result.failed,
                }), flush=True)


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


if __name__ == "__main__":
    if "--dispatcher" in sys.argv:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        asyncio.run(run_dispatcher())
    else:
        main()
