"""Measure Primscene as its users would, side by side in one run; write docs/benchmarks.{md,json}.

    python scripts/benchmark.py            (about 25 minutes on 2 cores; PostgreSQL must be running)

1. raw pipeline: detector + classifier in-process, per runtime, thread count and batch size,
   with the CPU each image costs; its best configuration on the service's runtime is the
   raw pipeline of the rounds;
2. rounds (3): in each, the raw pipeline, the naive FastAPI server on the service's runtime
   (scripts/bench/naive_peer.py) and the service (`serve run`, configs/local.yaml on PostgreSQL,
   Ray Serve's throughput mode) take turns under the same 32 closed-loop HTTP clients; the
   service gets a wave of one image per request with `Prefer: wait`, then one of 8 per request
   (`POST /batches`). The goals' ratios are paired within a round, then the median is taken, so
   this machine's drift (up to 2× within an hour) falls on both sides of each ratio;
3. memory over 2,000 tasks and idle task start, on one service;
4. one change each: dispatch batches of 1, Serve's proxy instead of direct ingress, the PyTorch
   detector; then the naive peer on PyTorch and Ray Serve's async inference
   (scripts/bench/ray_async_peer.py, Celery on the Redis at 127.0.0.1:6379, started if absent),
   measured once each, after the rounds.
In every service wave one more client, in a process of its own, submits 50 images at 10 per
second without waiting: the submit latency while the models are saturated.
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
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file from anywhere

from db import migrate
from db.engine import recreate_postgres_database
from scripts.bench import load, raw, ray_async
from scripts.bench.processes import Server, cpu_seconds
from scripts.bench.report import write_report
from scripts.datagen.dataset import DEFAULT_SEED, Item, sample

ADMIN_PASSWORD = "benchmark-admin-password"
USER_PASSWORD = "benchmark-user-password"
BIN = Path(sys.executable).parent
PROBES = 50  # submits at 10/s while the models are saturated, per wave


def make_images(count: int) -> list[bytes]:
    """JPEGs from the held-out test split's random streams, as users would upload them."""
    return [sample(Item("test", i, DEFAULT_SEED)).encoded for i in range(count)]


def serve_config(path: Path, port: int, *, runtime: str | None, batching: bool, source: Path = ROOT / "configs" / "local.yaml") -> Path:
    """`source` (configs/local.yaml unless told) with the benchmark's port, runtime and batching."""
    config = yaml.safe_load(source.read_text())
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
            self.peak = {k: max(self.peak[k], sample_[k]) for k in self.peak}

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
        "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0", "PRIMSCENE_DATABASE_URL": database_url, "PRIMSCENE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PRIMSCENE_DATA_DIR": str(work / f"data-{name}"), **(extra_env or {}),
    }
    port = yaml.safe_load(config.read_text())["http_options"]["port"]
    server = Server([str(BIN / "serve"), "run", str(config)], env=env, log=work / f"serve-{name}.log", cwd=ROOT)
    try:
        server.ready_s = server.wait_until_ready(f"{ready_url or f'http://127.0.0.1:{port}'}/readyz")
        yield server
    finally:
        server.stop()


# Ray Serve's throughput mode (docs/benchmarks.md measures it on and off): direct ingress (the
# Ingress replica serves HTTP itself, no proxy hop), one event loop, buffered request logs, gRPC
# between replicas. Set for the Serve controller and every replica, so in the environment of
# `serve run` / `ray start`, not in the Serve config.
def throughput_env(port: int) -> dict[str, str]:
    return {
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + 1),
        # The controller's loop (autoscaling, health, deployment state) every 0.5 s, not 0.1:
        # it drew 35 ms of CPU a second on an idle service (docs/levers.md).
        "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
        # A stopping Ingress still finishes its requests in flight, but does not stay up the
        # 30 s that a load balancer in front would need to take it out of rotation: there is
        # none on one machine, and Ctrl-C (or the benchmark's stop) waited those 30 s for nothing.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
    }


@dataclass(frozen=True)
class ServiceRun:
    """One way of running the service under load."""

    runtime: str | None = None  # None: the config's (openvino_int8)
    env: tuple[tuple[str, str], ...] = ()  # PRIMSCENE_* settings
    throughput_mode: bool = True
    waves: tuple[int, ...] = (1,)  # one load wave per entry: the images per request of each client


def run_service(name: str, run: ServiceRun, database_url: str, images: list[bytes], *, clients: int, work: Path, port: int) -> dict:
    """Start `serve run` on a fresh PostgreSQL database, load it wave after wave, stop it."""
    # In throughput mode Serve's proxy still starts on the config's port; the Ingress replica
    # serves on `port` itself.
    config = serve_config(work / f"{name}.yaml", port + 100 if run.throughput_mode else port, runtime=run.runtime, batching=True)
    env = {**dict(run.env), **(throughput_env(port) if run.throughput_mode else {})}
    url = f"http://127.0.0.1:{port}"
    with start_service(name, config, database_url, work, env, ready_url=url) as server:
        out: dict = {"ready_s": round(server.ready_s, 1), "settings": {**asdict(run), "env": dict(run.env)}}
        tokens = asyncio.run(load.create_users(url, ADMIN_PASSWORD, clients, USER_PASSWORD))
        for batch in sorted(set(run.waves)):  # warm-up: every route the waves use
            asyncio.run(load.drive_waiting(url, tokens, images[: 2 * clients], batch=batch))
        time.sleep(2)
        out["memory_idle_mb"] = server.memory_mb()
        out["idle_task_start_ms"] = asyncio.run(load.task_start_ms(url, tokens[0], images[:20]))
        out["waves"] = []
        for wave, batch in enumerate(run.waves, 1):
            print(f"  {name}: wave {wave}/{len(run.waves)}, {len(images)} images, {clients} clients × {batch}", flush=True)
            cpu_before = _cpu(server)
            with MemorySampler(server) as sampler:
                result = asyncio.run(load.drive_waiting(url, tokens, images, batch=batch, probes=PROBES))
            cpu_ms = _cpu_ms_per_task(cpu_before, _cpu(server), len(images) + PROBES)
            time.sleep(2)  # let the last requests settle before reading idle memory
            out["waves"].append({
                **result.as_dict(), "batch": batch, "cpu_ms_per_task": cpu_ms, "memory_peak_mb": sampler.peak, "memory_after_mb": server.memory_mb(),
            })
        return out


def _growth_by_role(samples: list[dict]) -> dict[str, float]:
    """PSS change of each kind of process from the first memory sample to the last, largest first."""
    first, last = samples[0]["pss_by_role"], samples[-1]["pss_by_role"]
    growth = {kind: round(last.get(kind, 0) - first.get(kind, 0), 1) for kind in first.keys() | last.keys()}
    return dict(sorted(growth.items(), key=lambda item: -abs(item[1])))


def _cpu(server: Server) -> dict[str, float]:
    """CPU seconds so far by process kind, with this script's load clients."""
    return {**cpu_seconds(server.process.pid), "load clients": sum(os.times()[:2])}


def _cpu_ms_per_task(before: dict[str, float], after: dict[str, float], tasks: int) -> dict[str, float]:
    """Where the time went: CPU milliseconds per task by process kind, most first."""
    used = {role: (after[role] - before.get(role, 0.0)) * 1000 / tasks for role in after}
    return {role: round(ms, 1) for role, ms in sorted(used.items(), key=lambda kv: -kv[1]) if ms >= 0.05}


def run_naive(runtime: str, images: list[bytes], *, clients: int, work: Path, port: int) -> dict:
    url = f"http://127.0.0.1:{port}"
    command = [str(BIN / "uvicorn"), "scripts.bench.naive_peer:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    server = Server(command, env={"PRIMSCENE_PEER_RUNTIME": runtime}, log=work / f"naive-peer-{runtime}.log", cwd=ROOT)
    try:
        server.wait_until_ready(f"{url}/healthz")
        asyncio.run(load.drive_naive(url, 2, images[:4]))  # warm-up
        cpu_before = _cpu(server)
        with MemorySampler(server) as sampler:
            result = asyncio.run(load.drive_naive(url, clients, images))
        cpu_ms = _cpu_ms_per_task(cpu_before, _cpu(server), len(images))
        return {**result.as_dict(), "runtime": runtime, "cpu_ms_per_task": cpu_ms, "memory_peak_mb": sampler.peak}
    finally:
        server.stop()


def run_ray_async(images: list[bytes], *, clients: int, work: Path, port: int, poll_s: float) -> dict:
    """Ray Serve's asynchronous inference (scripts/bench/ray_async_peer.py), Celery on Redis."""
    ray_async.ensure_redis()
    ray_async.flush()
    config = ray_async.serve_config(work / "ray-async.yaml", port)
    url = f"http://127.0.0.1:{port}"
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}  # the same priorities as the service's
    server = Server([str(BIN / "serve"), "run", str(config)], env=env, log=work / "ray-async.log", cwd=ROOT)
    try:
        server.wait_until_ready(f"{url}/healthz")
        asyncio.run(ray_async.drive(url, 4, images[:8], poll_s=poll_s))  # warm-up
        cpu_before = _cpu(server)
        result = asyncio.run(ray_async.drive(url, clients, images, poll_s=poll_s))
        cpu_ms = _cpu_ms_per_task(cpu_before, _cpu(server), len(images))
        return {**result.as_dict(), "poll_s": poll_s, "cpu_ms_per_task": cpu_ms}
    finally:
        server.stop()
        ray_async.flush()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _service_cpu(wave: dict) -> float:
    """CPU ms per task of every process of the service (PostgreSQL included), clients excluded."""
    return round(sum(ms for role, ms in wave["cpu_ms_per_task"].items() if role != "load clients"), 1)


def run_rounds(count: int, raw_config: dict, runtime: str, images: list[bytes], raw_images: list[bytes], database_url: str, *,
               clients: int, work: Path, port: int) -> list[dict]:
    """The systems the goals compare, in turns: each round measures the raw pipeline (its best
    configuration), then the naive peer, then the service (one image per request, then 8), each
    alone on the cores, so that this machine's drift falls on all of them alike. Each system is
    started for its turn and stopped after it: nothing idles beside the one measured."""
    rounds = []
    for number in range(1, count + 1):
        print(f"round {number}/{count}: raw pipeline, naive peer, service", flush=True)
        row = raw.pipeline_row(ROOT / "weights", raw_images, runtime, raw_config["threads"], raw_config["batch"])
        naive = run_naive(runtime, images, clients=clients, work=work, port=port + 1)
        service = run_service(f"round-{number}", ServiceRun(waves=(1, 8)), database_url, images, clients=clients, work=work, port=port)
        single, batch = service["waves"]
        rounds.append({"raw": row, "naive": naive, "service": service, "ratios": {
            "e2e_over_naive_same_runtime": round(single["images_per_s"] / naive["images_per_s"], 2),
            "e2e_batch_submit_over_naive_same_runtime": round(batch["images_per_s"] / naive["images_per_s"], 2),
            "e2e_over_raw": round(single["images_per_s"] / row["pipeline_images_per_s"], 3),
            "service_cpu_over_raw_cpu": round(_service_cpu(single) / row["pipeline_cpu_ms_per_image"], 2),
        }})
    return rounds


def summarise(report: dict) -> None:
    """The figures the goals are judged by. The four paired ratios are the median over the rounds
    of each round's ratio; the others divide by the rounds' median figure."""
    rounds, services = report["rounds"], report["service"]
    threads = report["settings"]["service_threads"]
    detector_speed = {name: raw.best(rows, "detector_images_per_s", threads)["detector_images_per_s"] for name, rows in report["raw"].items()}
    fastest = max(detector_speed, key=detector_speed.get)
    singles = [r["service"]["waves"][0] for r in rounds]
    e2e = median([w["images_per_s"] for w in singles])
    main_wave = min(singles, key=lambda w: abs(w["images_per_s"] - e2e))  # the median round's wave
    naive_torch = report["naive_pytorch"]["images_per_s"]
    paired = {name: [r["ratios"][name] for r in rounds] for name in rounds[0]["ratios"]}
    report["e2e_images_per_s"] = e2e
    report["summary"] = {
        "fastest_runtime": fastest,
        "raw_pipeline_images_per_s": median([r["raw"]["pipeline_images_per_s"] for r in rounds]),
        "raw_pipeline_best": report["raw_config"],
        "raw_pipeline_cpu_ms_per_image": median([r["raw"]["pipeline_cpu_ms_per_image"] for r in rounds]),
        "e2e_images_per_s": e2e,
        "e2e_images_per_s_all_rounds": [w["images_per_s"] for w in singles],
        "e2e_batch_submit_images_per_s": median([r["service"]["waves"][1]["images_per_s"] for r in rounds]),
        "naive_same_runtime_images_per_s": median([r["naive"]["images_per_s"] for r in rounds]),
        "naive_pytorch_images_per_s": naive_torch,
        "ray_async_images_per_s": report["ray_async"]["images_per_s"],
        "cpu_ms_per_task": main_wave["cpu_ms_per_task"],
        "service_cpu_ms_per_task": _service_cpu(main_wave),
        "paired_ratios_by_round": paired,
    }
    report["ratios"] = {
        **{name: median(values) for name, values in paired.items()},
        "e2e_over_ray_async": round(e2e / report["ray_async"]["images_per_s"], 2),
        "e2e_over_naive": round(e2e / naive_torch, 2),
        "e2e_pytorch_over_naive": round(services["pytorch"]["waves"][0]["images_per_s"] / naive_torch, 2),
        "batch_on_over_off": round(e2e / services["batch_off"]["waves"][0]["images_per_s"], 3),
        "throughput_mode_on_over_off": round(e2e / services["proxy"]["waves"][0]["images_per_s"], 3),
        "fastest_runtime_over_pytorch": round(detector_speed[fastest] / detector_speed["pytorch"], 2),
        "fastest_runtime_over_pytorch_network_only": round(report["network_ms"][threads]["pytorch"] / report["network_ms"][threads][fastest], 2),
    }
    memory_run = services["memory"]
    saturated = [w for w in [*singles, *memory_run["waves"]] if w["probe_while_saturated"]]
    report["submit_p99_ms_saturated"] = max(w["probe_submit_ms"]["p99"] for w in saturated) if saturated else None
    report["idle_task_start_ms"] = memory_run["idle_task_start_ms"]
    after = [w["memory_after_mb"]["pss"] for w in memory_run["waves"]]
    report["memory_mb"] = {
        "idle": memory_run["memory_idle_mb"]["pss"],
        "peak_under_load": max(w["memory_peak_mb"]["pss"] for w in memory_run["waves"]),
        "after_each_wave": after,
        "after_all_tasks": after[-1],
        "growth_after_first_wave": round(after[-1] - after[0], 1),
        "growth_after_first_wave_by_role": _growth_by_role([w["memory_after_mb"] for w in memory_run["waves"]]),
    }
    evaluation = ROOT / "docs" / "evaluation.json"  # accuracy per runtime, from scripts/evaluate.py
    if evaluation.exists():
        detector = json.loads(evaluation.read_text())["detector"]
        report["accuracy_map50_95"] = {name: m["map50_95"] for name, m in detector.items()}
        report["map_drop_fastest_runtime"] = round(detector["pytorch"]["map50_95"] - detector[fastest]["map50_95"], 4)
    every_run = [*services.values(), *(r["service"] for r in rounds)]
    report["lost_or_failed_tasks"] = sum(sum(w["failed"].values()) for run in every_run for w in run["waves"])


# The service runs after the rounds, one change each from the defaults, so every lever has its
# before/after row; "memory" runs the defaults for 2,000 tasks (4 waves) on one service.
LEVERS = {
    "batch_off": ServiceRun(env=(("PRIMSCENE_BATCH_SIZE", "1"),)),
    "proxy": ServiceRun(throughput_mode=False),
    "pytorch": ServiceRun(runtime="pytorch"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500, help="images per load wave (distinct test-split images)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of raw pipeline, naive peer and service, in turns")
    parser.add_argument("--memory-waves", type=int, default=4, help="waves on one service for the memory figures (4 × 500 = 2,000 tasks)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--ray-async-poll-s", type=float, default=0.25, help="how often the Ray async peer's clients ask for status")
    parser.add_argument("--raw-images", type=int, default=64)
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_bench", help="dropped and recreated")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    started = time.perf_counter()
    local = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())["applications"][0]["args"]
    runtime = local["runtime"]
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "processor": _processor(), "python": platform.python_version()},
        "settings": {"runtime": runtime, "service_threads": local["model_threads"], "clients": args.clients, "images_per_wave": args.images,
            "rounds": args.rounds, "memory_waves": args.memory_waves},
    }
    images = make_images(max(args.images, args.raw_images))
    raw_images = images[: args.raw_images]
    print("raw pipeline: every runtime, thread count and batch size", flush=True)
    report["raw"] = raw.measure(ROOT / "weights", raw_images, thread_counts=(1, 2))
    report["raw_config"] = {k: raw.best(report["raw"][runtime], "pipeline_images_per_s")[k] for k in ("threads", "batch")}
    imgsz = json.loads((ROOT / "weights" / "primitive-detector.json").read_text())["imgsz"]
    report["network_ms"] = {threads: raw.network_ms(ROOT / "weights", threads, imgsz) for threads in (1, 2)}
    with tempfile.TemporaryDirectory(prefix="primscene-bench-") as tmp:
        work = Path(tmp)
        report["rounds"] = run_rounds(args.rounds, report["raw_config"], runtime, images[: args.images], raw_images, args.database_url,
            clients=args.clients, work=work, port=args.port)
        report["service"] = {}
        for name, run in {"memory": ServiceRun(waves=(1,) * args.memory_waves), **LEVERS}.items():
            print(f"service: {name}", flush=True)
            report["service"][name] = run_service(name, run, args.database_url, images[: args.images], clients=args.clients, work=work, port=args.port)
        print("naive peer: pytorch", flush=True)
        report["naive_pytorch"] = run_naive("pytorch", images[: args.images], clients=args.clients, work=work, port=args.port + 1)
        print("Ray Serve async inference peer", flush=True)
        report["ray_async"] = run_ray_async(images[: args.images], clients=args.clients, work=work, port=args.port + 2, poll_s=args.ray_async_poll_s)
    summarise(report)
    report["seconds"] = round(time.perf_counter() - started)
    write_report(report, args.out)
    print(json.dumps({k: report[k] for k in ("e2e_images_per_s", "ratios", "submit_p99_ms_saturated", "idle_task_start_ms", "memory_mb",
        "lost_or_failed_tasks")}, indent=1))


def _processor() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()
