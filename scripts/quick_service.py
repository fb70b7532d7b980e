"""One quick load run of the service, for trying one change at a time (the levers table in
docs/benchmarks.md); `scripts/benchmark.py` is the full, comparable run.

    python scripts/quick_service.py --images 500                        (proxy mode)
    python scripts/quick_service.py --images 500 --throughput-mode      (direct ingress)
    python scripts/quick_service.py --images 500 --throughput-mode --env PRIMSCENE_MAX_IN_FLIGHT=24

Starts `serve run` with configs/local.yaml (or `--config`) on a fresh PostgreSQL database, lets 32 clients (one
user each) send an image at a time with `Prefer: wait` (or `--batch` images per request), and
prints images/s and the CPU milliseconds per task of every process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench import load
from scripts.benchmark import (
    ADMIN_PASSWORD,
    USER_PASSWORD,
    _cpu,
    _cpu_ms_per_task,
    make_images,
    serve_config,
    start_service,
    throughput_env,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1, help="images per request (POST /batches when > 1)")
    parser.add_argument("--throughput-mode", action="store_true", help="Ray Serve's throughput mode with direct ingress")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "local.yaml", help="the Serve config to start (a variant to compare)")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the service (repeatable)")
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_bench")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--probes", type=int, default=0, help="submits without waiting, 10/s, while the load runs (submit latency)")
    args = parser.parse_args()
    images = make_images(args.images)
    env = dict(item.split("=", 1) for item in args.env)
    url = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory(prefix="primscene-quick-") as tmp:
        work = Path(tmp)
        proxy_port = args.port + 100 if args.throughput_mode else args.port
        config = serve_config(work / "quick.yaml", proxy_port, runtime=None, batching=True, source=args.config)
        if args.throughput_mode:
            env.update(throughput_env(args.port))
        with start_service("quick", config, args.database_url, work, env, ready_url=url) as server:
            tokens = asyncio.run(load.create_users(url, ADMIN_PASSWORD, args.clients, USER_PASSWORD))
            asyncio.run(load.drive_waiting(url, tokens, images[: 2 * args.clients * args.batch], batch=args.batch))  # warm-up
            before = _cpu(server)
            result = asyncio.run(load.drive_waiting(url, tokens, images, batch=args.batch, probes=args.probes))
            cpu = _cpu_ms_per_task(before, _cpu(server), len(images))
    service = round(sum(ms for role, ms in cpu.items() if role != "load clients"), 1)
    print(json.dumps({"images_per_s": result.images_per_s, "failed": result.failed, "latency_ms": result.completion_ms,
                      **({"probe_submit_ms": result.probe_submit_ms, "probe_while_saturated": result.probe_while_saturated} if args.probes else {}),
                      "service_cpu_ms_per_task": service, "cpu_ms_per_task": cpu}, indent=1))


if __name__ == "__main__":
    main()
