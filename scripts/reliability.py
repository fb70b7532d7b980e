"""Reliability under load and injected faults, on the real Ray Serve deployment with PostgreSQL.

    python scripts/reliability.py    # about 15 minutes here; writes docs/reliability.{json,md}

Phases, each with its own clients (one user each; every submit has an Idempotency-Key and is
retried after errors, as a careful client would):
  load      2,000 tasks from 64 clients: all succeed, none lost or doubled, no 5xx
  chaos     replicas of the detector, classifier, dispatcher and ingress killed at random (seeded) under load
  outage    PostgreSQL stopped for ~10 s under load: 503 + Retry-After, then recovery by itself
  poison    a task whose stored image cannot be decoded: fails once with a reason, blocks nothing
  shutdown  `serve.shutdown()` under load, then a fresh start: nothing stuck in `running`

It stops and starts the machine's PostgreSQL cluster (pg_ctlcluster), so run it where nothing
else needs that server for a minute. Traffic stays on loopback; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx

from db import migrate
from db.engine import recreate_postgres_database
from scripts.bench.load import percentiles
from scripts.chaos import checks, faults
from scripts.chaos import report as report_page
from scripts.chaos.clients import Drive, create_users, drive
from scripts.datagen.dataset import DEFAULT_SEED, Item, sample

ROOT = Path(__file__).resolve().parents[1]
APP = "primscene"
ADMIN_PASSWORD = "reliability-admin-password"
# Short leases and backoffs, so that a killed worker's tasks come back in seconds.
PHASES = ["load", "chaos", "outage", "poison", "shutdown"]
ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_worker_niceness": "0",  # as `make run`: the Ingress above the model replicas (docs/levers.md)
    "PRIMSCENE_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "PRIMSCENE_LEASE_S": "10",
    "PRIMSCENE_HEARTBEAT_S": "1",
    "PRIMSCENE_RETRY_BACKOFF_S": "0.2",
    "PRIMSCENE_RESCUE_INTERVAL_S": "1",
    "PRIMSCENE_MAX_ATTEMPTS": "10",
}


class Service:
    """The Serve application in this process's own local Ray cluster."""

    def __init__(self, database_url: str, port: int, data_dir: Path) -> None:
        self.database_url, self.port, self.data_dir = database_url, port, data_dir
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> float:
        from ray import serve

        from serve_app.app import AppArgs, build_app

        started = time.perf_counter()
        serve.start(http_options={"host": "127.0.0.1", "port": self.port})
        serve.run(build_app(AppArgs(database_url=self.database_url, data_dir=self.data_dir)), name=APP, route_prefix="/", blocking=False)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError("the service did not become ready")


def in_background(coroutine) -> Future:
    """Run clients on their own event loop in a thread, so this thread is free to inject faults."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(asyncio.run, coroutine)
    pool.shutdown(wait=False)
    return future


def summary(result: Drive, integrity: dict) -> dict:
    latencies = [(_time(t["finished_at"]) - _time(t["created_at"])).total_seconds() * 1000 for t in result.finished]
    succeeded = sum(t["status"] == "succeeded" for t in result.finished)
    return {
        "tasks": len(result.accepted),
        "succeeded": succeeded,
        "failed": len(result.finished) - succeeded,
        "unfinished": result.unfinished,
        "seconds": result.seconds,
        "submit_answers": dict(result.answers),
        "server_errors": result.server_errors,
        "submit_retries": result.submit_retries,
        "completion_ms": percentiles(latencies),
        "database": integrity,
    }


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def phase_load(service: Service, tokens: list[str], images: list[bytes]) -> dict:
    result = asyncio.run(drive(service.url, tokens, images))
    return summary(result, asyncio.run(checks.integrity(service.database_url, result.accepted)))


def phase_chaos(service: Service, tokens: list[str], images: list[bytes], seed: int, every_s: float) -> dict:
    load = in_background(drive(service.url, tokens, images))
    kills = faults.kill_replicas_until(
        load.done, app=APP, deployments=["Detector", "Classifier", "Dispatcher", "Ingress"], rng=random.Random(seed), every_s=every_s
    )
    result = load.result()
    report = summary(result, asyncio.run(checks.integrity(service.database_url, result.accepted)))
    report["kills"] = dict(kills)
    report["seed"] = seed
    report["tasks_retried"] = sum(t["attempts"] > 1 for t in result.finished)
    return report


def phase_outage(service: Service, tokens: list[str], images: list[bytes], outage_s: float) -> dict:
    load_result = Drive()
    load = in_background(drive(service.url, tokens[:-1], images, result=load_result))
    time.sleep(3)  # work is flowing
    accepted_before = list(load_result.accepted)
    faults.postgres_cluster("stop")
    stop_probe = threading.Event()
    probe = in_background(faults.probe_while(stop_probe, service.url, tokens[-1], images[0]))
    time.sleep(outage_s)
    stop_probe.set()
    answers, probe_accepted = probe.result()
    faults.postgres_cluster("start")
    faults.wait_for_postgres()
    back = time.perf_counter()
    recovered_s = _first_accepted_submit(service.url, tokens[-1], images[0]) - back
    result = load.result()
    report = summary(result, asyncio.run(checks.integrity(service.database_url, result.accepted + probe_accepted)))
    statuses = Counter(str(a["status"]) for a in answers)
    report["outage"] = {
        "seconds": outage_s,
        "probe_requests": len(answers),
        "probe_answers": dict(sorted(statuses.items())),
        "all_503_with_retry_after": all(a["status"] == 503 and a["retry_after"] for a in answers),
        "probe_ms": percentiles([a["ms"] for a in answers]),
        "accepted_during_outage": len(probe_accepted),
        "accepted_before_outage": len(accepted_before),
        "lost_of_accepted_before": len(set(accepted_before) - {t["id"] for t in result.finished if t["status"] == "succeeded"}),
        "first_accepted_submit_after_restart_s": round(recovered_s, 2),
    }
    return report


def _first_accepted_submit(url: str, token: str, image: bytes, timeout_s: float = 120) -> float:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=10, headers={"Authorization": token}) as http:
        while time.monotonic() < deadline:
            try:
                if http.post("/api/v1/tasks", files={"image": ("i.jpg", image, "image/jpeg")}).status_code == 202:
                    return time.perf_counter()
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise TimeoutError("no submit accepted after the database came back")


def phase_poison(service: Service, tokens: list[str], images: list[bytes], username: str) -> dict:
    before = {d: faults.replica_names(APP, d) for d in ("Detector", "Classifier")}
    poison_id = asyncio.run(faults.enqueue_poison(service.database_url, username))
    result = asyncio.run(drive(service.url, tokens, images))
    with httpx.Client(base_url=service.url, timeout=10, headers={"Authorization": tokens[0]}) as http:
        deadline = time.monotonic() + 60
        while (poison := http.get(f"/api/v1/tasks/{poison_id}").json())["status"] not in ("succeeded", "failed"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    report = summary(result, asyncio.run(checks.integrity(service.database_url, result.accepted)))
    report["poison"] = {
        "status": poison["status"],
        "attempts": poison["attempts"],
        "error": poison["error"],
        "replicas_unchanged": before == {d: faults.replica_names(APP, d) for d in before},
    }
    return report


def _busy(database_url: str, timeout_s: float = 60) -> dict[str, int]:
    """Wait until tasks are both queued and running; the status counts at that moment."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = asyncio.run(checks.status_counts(database_url))
        if counts.get("running") and counts.get("queued"):
            return counts
        time.sleep(0.2)
    raise TimeoutError("the service never had tasks both queued and running")


def phase_shutdown(service: Service, tokens: list[str], images: list[bytes]) -> dict:
    from ray import serve

    load = in_background(drive(service.url, tokens, images))
    at_shutdown = _busy(service.database_url)
    started = time.perf_counter()
    serve.shutdown()
    shutdown_s = time.perf_counter() - started
    after_shutdown = asyncio.run(checks.status_counts(service.database_url))
    restart_s = service.start()
    result = load.result()
    report = summary(result, asyncio.run(checks.integrity(service.database_url, result.accepted)))
    report["shutdown"] = {
        "status_at_shutdown": at_shutdown,
        "status_right_after_shutdown": after_shutdown,
        "shutdown_s": round(shutdown_s, 1),
        "restart_ready_s": round(restart_s, 1),
        "running_after_restart_and_drain": asyncio.run(checks.status_counts(service.database_url)).get("running", 0),
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000, help="tasks in the load phase")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--fault-tasks", type=int, default=400, help="tasks in each fault phase")
    parser.add_argument("--fault-clients", type=int, default=16)
    parser.add_argument("--kill-every-s", type=float, default=15.0, help="mean seconds between kills (a replacement starts in ~5-10 s here)")
    parser.add_argument("--outage-s", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_reliability")
    parser.add_argument("--port", type=int, default=8021)
    parser.add_argument("--only", nargs="+", choices=PHASES, default=PHASES, help="run just these phases")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.json")
    parser.add_argument("--page", type=Path, default=ROOT / "docs" / "reliability.md", help="Markdown page whose run block is rewritten")
    args = parser.parse_args()

    import ray

    os.environ.update(ENVIRONMENT)
    asyncio.run(recreate_postgres_database(args.database_url))
    migrate.upgrade(args.database_url)
    images = [sample(Item("test", i, DEFAULT_SEED)).encoded for i in range(100)]
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    service = Service(args.database_url, args.port, ROOT / "var" / "reliability")
    report: dict = {"started_at": datetime.now().isoformat(timespec="seconds"), "args": {k: str(v) for k, v in vars(args).items()}}
    if set(args.only) != set(PHASES) and args.out.exists():  # a partial run keeps the other phases' figures
        report = {**json.loads(args.out.read_text()), "rerun": {"phases": args.only, "started_at": report["started_at"]}}
    report["ready_s"] = round(service.start(), 1)
    users = asyncio.run(create_users(service.url, ADMIN_PASSWORD, args.clients + 1, prefix="rel"))
    fault_users = users[: args.fault_clients + 1]

    def cycle(count: int) -> list[bytes]:
        return [images[i % len(images)] for i in range(count)]

    phases = {
        "load": lambda: phase_load(service, users[: args.clients], cycle(args.tasks)),
        "chaos": lambda: phase_chaos(service, fault_users[:-1], cycle(args.fault_tasks), args.seed, args.kill_every_s),
        "outage": lambda: phase_outage(service, fault_users, cycle(args.fault_tasks), args.outage_s),
        "poison": lambda: phase_poison(service, fault_users[:-1], cycle(args.fault_tasks // 4), "rel-000"),
        "shutdown": lambda: phase_shutdown(service, fault_users[:-1], cycle(args.fault_tasks)),
    }
    try:
        for name in args.only:
            run = phases[name]
            started = time.perf_counter()
            report[name] = run()
            report[name]["phase_s"] = round(time.perf_counter() - started, 1)
            print(f"{name}: {json.dumps(report[name])}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")  # after every phase: a crash keeps what was measured
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()
    report_page.write_into(args.page, report)
    print(f"wrote {args.out} and the run block of {args.page}")


if __name__ == "__main__":
    main()
