"""Measure Primscene as its users would, side by side in one run; write docs/benchmarks.{md,json}.

    python scripts/benchmark.py            (about 10 minutes on 2 cores; PostgreSQL must be running)

1. raw pipeline: detector + classifier in-process, per runtime, thread count and batch size;
2. the service (`serve run`, configs/local.yaml on PostgreSQL) under 32 concurrent HTTP clients:
   throughput, submit and completion latency, idle task start, memory over 2,000 tasks;
3. the same with `@serve.batch` off (max_batch_size 1) and with the PyTorch runtime;
4. the naive peer (scripts/bench/naive_peer.py) under the same clients.
Every goal is a ratio of figures taken in this one run, so a slower machine moves both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file from anywhere

from db import migrate  # noqa: E402
from db.engine import recreate_postgres_database  # noqa: E402
from scripts.bench import load, raw  # noqa: E402
from scripts.bench.processes import Server, cpu_seconds  # noqa: E402
from scripts.bench.report import write_report  # noqa: E402
from scripts.datagen.dataset import DEFAULT_SEED, Item, sample  # noqa: E402

ADMIN_PASSWORD = "benchmark-admin-password"
USER_PASSWORD = "benchmark-user-password"
BIN = Path(sys.executable).parent
PROBES = 50  # submits at 10/s while the pipeline is saturated, per wave


def make_images(count: int) -> list[bytes]:
    """JPEGs from the held-out test split's random streams, as users would upload them."""
    return [sample(Item("test", i, DEFAULT_SEED)).encoded for i in range(count)]


def serve_config(path: Path, port: int, *, runtime: str | None, batching: bool) -> Path:
    """configs/local.yaml with the benchmark's port, runtime and batching."""
    config = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    config["http_options"]["port"] = port
    app = config["applications"][0]
    if runtime is not None:
        app["args"]["runtime"] = runtime
    if not batching:
        for deployment in app["deployments"]:
            if "max_batch_size" in deployment.get("user_config", {}):
                deployment["user_config"]["max_batch_size"] = 1
    path.write_text(yaml.safe_dump(config))
    return path


class MemorySampler:
    """The largest memory figure of a server while something runs."""

    def __init__(self, server: Server, every_s: float = 2.0) -> None:
        self.server, self.every_s, self.peak = server, every_s, {"pss": 0.0, "rss": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            sample_ = self.server.memory_mb()
            self.peak = {k: max(self.peak[k], sample_[k]) for k in sample_}

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def start_service(
    name: str, config: Path, database_url: str, work: Path, extra_env: dict[str, str] | None = None, ready_url: str | None = None
) -> Iterator[Server]:
    """`serve run` of `config` on a fresh PostgreSQL database, ready; stopped on exit."""
    asyncio.run(recreate_postgres_database(database_url))
    migrate.upgrade(database_url)
    env = {
        "RAY_USAGE_STATS_ENABLED": "0", "PRIMSCENE_DATABASE_URL": database_url, "PRIMSCENE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PRIMSCENE_DATA_DIR": str(work / f"data-{name}"), **(extra_env or {}),
    }
    port = yaml.safe_load(config.read_text())["http_options"]["port"]
    server = Server([str(BIN / "serve"), "run", str(config)], env=env, log=work / f"serve-{name}.log", cwd=ROOT)
    try:
        server.ready_s = server.wait_until_ready(f"{ready_url or f'http://127.0.0.1:{port}'}/readyz")
        yield server
    finally:
        server.stop()


def run_service(name: str, config: Path, database_url: str, images: list[bytes], *, clients: int, waves: int, work: Path, port: int, poll_s: float) -> dict:
    """Start `serve run` on a fresh PostgreSQL database, load it, stop it."""
    url = f"http://127.0.0.1:{port}"
    with start_service(name, config, database_url, work) as server:
        out: dict = {"ready_s": round(server.ready_s, 1)}
        tokens = asyncio.run(load.create_users(url, ADMIN_PASSWORD, clients, USER_PASSWORD))
        asyncio.run(load.drive_service(url, tokens, images[: 2 * clients]))  # warm-up: first batches, pools
        time.sleep(2)
        out["memory_idle_mb"] = server.memory_mb()
        out["idle_task_start_ms"] = asyncio.run(load.task_start_ms(url, tokens[0], images[:20]))
        out["waves"] = []
        for wave in range(waves):
            print(f"  {name}: wave {wave + 1}/{waves}, {len(images)} images, {clients} clients", flush=True)
            cpu_before = _cpu(server)
            with MemorySampler(server) as sampler:
                result = asyncio.run(load.drive_service(url, tokens, images, poll_s=poll_s, probes=PROBES))
            cpu_ms = _cpu_ms_per_task(cpu_before, _cpu(server), len(images))
            time.sleep(2)  # let the last requests settle before reading idle memory
            out["waves"].append({**result.as_dict(), "cpu_ms_per_task": cpu_ms, "memory_peak_mb": sampler.peak, "memory_after_mb": server.memory_mb()})
        return out


def _cpu(server: Server) -> dict[str, float]:
    """CPU seconds so far by process kind, with this script's load clients."""
    return {**cpu_seconds(server.process.pid), "load clients": sum(os.times()[:2])}


def _cpu_ms_per_task(before: dict[str, float], after: dict[str, float], tasks: int) -> dict[str, float]:
    """Where the time went: CPU milliseconds per task by process kind, most first."""
    used = {role: (after[role] - before.get(role, 0.0)) * 1000 / tasks for role in after}
    return {role: round(ms, 1) for role, ms in sorted(used.items(), key=lambda kv: -kv[1]) if ms >= 0.05}


def run_naive(images: list[bytes], *, clients: int, work: Path, port: int) -> dict:
    url = f"http://127.0.0.1:{port}"
    command = [str(BIN / "uvicorn"), "scripts.bench.naive_peer:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    server = Server(command, env={}, log=work / "naive-peer.log", cwd=ROOT)
    try:
        server.wait_until_ready(f"{url}/healthz")
        asyncio.run(load.drive_naive(url, 2, images[:4]))  # warm-up
        with MemorySampler(server) as sampler:
            result = asyncio.run(load.drive_naive(url, clients, images))
        return {**result.as_dict(), "memory_peak_mb": sampler.peak}
    finally:
        server.stop()


def median_wave(run: dict) -> dict:
    waves = sorted(run["waves"], key=lambda w: w["images_per_s"])
    return waves[len(waves) // 2]


def summarise(report: dict) -> None:
    """The figures the goals are judged by, from the measurements above."""
    raw_rows, services = report["raw"], report["service"]
    main, main_wave = services["batch_on"], median_wave(services["batch_on"])
    runtime = report["settings"]["runtime"]
    threads = report["settings"]["service_threads"]
    detector_speed = {name: raw.best(rows, "detector_images_per_s", threads)["detector_images_per_s"] for name, rows in raw_rows.items()}
    fastest = max(detector_speed, key=detector_speed.get)
    raw_best = raw.best(raw_rows[runtime], "pipeline_images_per_s")
    all_waves = main["waves"]
    report["summary"] = {
        "fastest_runtime": fastest,
        "raw_pipeline_images_per_s": raw_best["pipeline_images_per_s"],
        "raw_pipeline_best": {k: raw_best[k] for k in ("threads", "batch")},
        "e2e_images_per_s": main_wave["images_per_s"],
        "e2e_images_per_s_all_waves": [w["images_per_s"] for w in all_waves],
        "naive_images_per_s": report["naive"]["images_per_s"],
        "cpu_ms_per_task": main_wave["cpu_ms_per_task"],
    }
    report["ratios"] = {
        "e2e_over_raw": round(main_wave["images_per_s"] / raw_best["pipeline_images_per_s"], 3),
        "fastest_runtime_over_pytorch": round(detector_speed[fastest] / detector_speed["pytorch"], 2),
        "fastest_runtime_over_pytorch_network_only": round(report["network_ms"][threads]["pytorch"] / report["network_ms"][threads][fastest], 2),
        "e2e_over_naive": round(main_wave["images_per_s"] / report["naive"]["images_per_s"], 2),
        "e2e_pytorch_over_naive": round(median_wave(services["pytorch"])["images_per_s"] / report["naive"]["images_per_s"], 2),
        "batch_on_over_off": round(main_wave["images_per_s"] / median_wave(services["batch_off"])["images_per_s"], 3),
    }
    saturated = [w for w in all_waves if w["probe_while_saturated"]]
    report["submit_p99_ms_saturated"] = max(w["probe_submit_ms"]["p99"] for w in saturated) if saturated else None
    report["submit_p99_ms_flood"] = max(w["submit_ms"]["p99"] for w in all_waves)
    report["idle_task_start_ms"] = main["idle_task_start_ms"]
    after = [w["memory_after_mb"]["pss"] for w in all_waves]
    report["memory_mb"] = {
        "idle": main["memory_idle_mb"]["pss"],
        "peak_under_load": max(w["memory_peak_mb"]["pss"] for w in all_waves),
        "after_each_wave": after,
        "after_2000_tasks": after[-1],
        "growth_after_first_wave": round(after[-1] - after[0], 1),
    }
    evaluation = ROOT / "docs" / "evaluation.json"  # accuracy per runtime, from scripts/evaluate.py
    if evaluation.exists():
        detector = json.loads(evaluation.read_text())["detector"]
        report["accuracy_map50_95"] = {name: m["map50_95"] for name, m in detector.items()}
        report["map_drop_fastest_runtime"] = round(detector["pytorch"]["map50_95"] - detector[fastest]["map50_95"], 4)
    report["lost_or_failed_tasks"] = sum(sum(w["failed"].values()) for run in services.values() for w in run["waves"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500, help="images per load wave (distinct test-split images)")
    parser.add_argument("--waves", type=int, default=4, help="waves on the main service run (4 × 500 = 2,000 tasks)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--poll-s", type=float, default=2.0, help="how often each client lists its tasks while waiting")
    parser.add_argument("--raw-images", type=int, default=64)
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_bench", help="dropped and recreated")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    started = time.perf_counter()
    local = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())["applications"][0]["args"]
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "processor": _processor(), "python": platform.python_version()},
        "settings": {"runtime": local["runtime"], "service_threads": local["model_threads"], "clients": args.clients, "poll_s": args.poll_s, "images_per_wave": args.images, "waves": args.waves},
    }
    images = make_images(max(args.images, args.raw_images))
    print("raw pipeline", flush=True)
    report["raw"] = raw.measure(ROOT / "weights", images[: args.raw_images], thread_counts=(1, 2))
    imgsz = json.loads((ROOT / "weights" / "primitive-detector.json").read_text())["imgsz"]
    report["network_ms"] = {threads: raw.network_ms(ROOT / "weights", threads, imgsz) for threads in (1, 2)}
    with tempfile.TemporaryDirectory(prefix="primscene-bench-") as tmp:
        work = Path(tmp)
        runs = {
            "batch_on": (local["runtime"], True, args.waves),
            "batch_off": (local["runtime"], False, 1),
            "pytorch": ("pytorch", True, 1),
        }
        report["service"] = {}
        for name, (runtime, batching, waves) in runs.items():
            print(f"service: {name}", flush=True)
            config = serve_config(work / f"{name}.yaml", args.port, runtime=runtime, batching=batching)
            report["service"][name] = run_service(
                name, config, args.database_url, images[: args.images], clients=args.clients, waves=waves, work=work, port=args.port, poll_s=args.poll_s,
            )
        print("naive peer", flush=True)
        report["naive"] = run_naive(images[: args.images], clients=args.clients, work=work, port=args.port + 1)
    summarise(report)
    report["seconds"] = round(time.perf_counter() - started)
    write_report(report, args.out)
    print(json.dumps({k: report[k] for k in ("ratios", "submit_p99_ms_saturated", "idle_task_start_ms", "memory_mb", "lost_or_failed_tasks")}, indent=1))


def _processor() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()
