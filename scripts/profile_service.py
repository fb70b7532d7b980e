"""Where each process of the service spends its CPU under load: py-spy on every replica.

    python scripts/profile_service.py --label before      (about 2 minutes; PostgreSQL must run)

Starts the service as the benchmark does (`serve run`, configs/local.yaml on PostgreSQL),
drives it with the benchmark's clients and, while the load runs, samples every Serve process
(Ingress, Dispatcher, Detector, Classifier, proxy) with `py-spy record`. Writes
docs/profiles/<label>.md: per process, the functions with the most samples of their own
(self) and the frames of ours with the most samples including their callees (inclusive).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench import load
from scripts.bench.processes import role

BIN = Path(sys.executable).parent
PROFILED = ("Ingress", "Dispatcher", "Detector", "Classifier", "ProxyActor")
OUR_PACKAGES = ("serve_app/", "db/", "deployments/")


def profile_pids(root_pid: int) -> dict[str, int]:
    """The pid of each Serve process worth profiling, by role."""
    found = {}
    for process in psutil.Process(root_pid).children(recursive=True):
        try:
            name = role(process)
        except psutil.Error:
            continue
        if name in PROFILED:
            found[name] = process.pid
    return found


def record(pid: int, seconds: int, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100",
         "--format", "raw", "--nonblocking", "--threads", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )


def summarise(raw: Path, top: int = 12) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, top self frames, top inclusive frames of our own code) from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[_short(frames[-1])] += n
        for frame in {_short(f) for f in frames if any(p in f for p in OUR_PACKAGES)}:
            inclusive[frame] += n
    return total, own.most_common(top), inclusive.most_common(top)


def _short(frame: str) -> str:
    """`function (path/to/file.py:12)` → `function (file.py)`; paths inside site-packages shortened."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def main() -> None:
    from scripts.benchmark import ADMIN_PASSWORD, USER_PASSWORD, make_images, serve_config, start_service, throughput_env

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument(
        "--load", choices=("single", "flood"), default="single",
        help="single: each client sends one image and waits for its result; flood: all at once, then list every 2 s",
    )
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_bench")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--throughput-mode", action="store_true", help="Ray Serve's throughput mode with direct ingress, as benchmarked")
    parser.add_argument("--keep-raw", type=Path, help="also keep py-spy's raw stacks (one <role>.txt each) in this folder")
    args = parser.parse_args()
    images = make_images(args.images)
    url = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory(prefix="primscene-profile-") as tmp:
        work = Path(tmp)
        config = serve_config(work / "profile.yaml", args.port + 100 if args.throughput_mode else args.port, runtime=None, batching=True)
        env = throughput_env(args.port) if args.throughput_mode else {}
        with start_service("profile", config, args.database_url, work, env, ready_url=url) as server:
            tokens = asyncio.run(load.create_users(url, ADMIN_PASSWORD, args.clients, USER_PASSWORD))
            drive = load.drive_waiting if args.load == "single" else load.drive_service
            asyncio.run(drive(url, tokens, images[: 2 * args.clients]))  # warm-up
            pids = profile_pids(server.process.pid)
            driver = threading.Thread(target=lambda: asyncio.run(drive(url, tokens, images)), daemon=True)
            driver.start()
            time.sleep(3)  # into the steady state
            recorders = {name: (record(pid, args.seconds, work / f"{name}.txt"), work / f"{name}.txt") for name, pid in pids.items()}
            for recorder, _ in recorders.values():
                recorder.wait()
            driver.join()
            write(args.label, {name: summarise(out) for name, (_, out) in recorders.items() if out.exists()}, args)
            if args.keep_raw:
                args.keep_raw.mkdir(parents=True, exist_ok=True)
                for _, out in recorders.values():
                    if out.exists():
                        shutil.copy(out, args.keep_raw / out.name)


def write(label: str, profiles: dict, args: argparse.Namespace) -> None:
    out = ROOT / "docs" / "profiles" / f"{label}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Profile: {label}",
        "",
        f"`python scripts/profile_service.py --label {label}`: py-spy record (100 Hz, {args.seconds} s, non-blocking) of every "
        f"Serve process under the `{args.load}` load of {args.clients} clients. Samples count only "
        "time on the CPU (idle waits are not sampled).",
    ]
    for name, (total, own, inclusive) in sorted(profiles.items(), key=lambda kv: -kv[1][0]):
        lines += ["", f"## {name}: {total} samples", "", "| self | function |", "| --- | --- |"]
        lines += [f"| {n / total:.1%} | `{frame}` |" for frame, n in own]
        lines += ["", "| inclusive | our frame |", "| --- | --- |"]
        lines += [f"| {n / total:.1%} | `{frame}` |" for frame, n in inclusive]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
