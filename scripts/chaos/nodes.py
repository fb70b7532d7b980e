"""Real Ray nodes on this machine, started with the `ray` CLI, each in its own temp dir, and taken
away the way a crashed machine goes: its raylet killed by process id.

`ray stop` ends every Ray process on the machine, other people's clusters included, so these
nodes are stopped by what identifies them: their temp dir on the command line, the processes
below them, and workers whose `RAY_RAYLET_PID` is one of their raylets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))


@dataclass
class LocalNode:
    label: str  # how reports name it: "head", "node2", …
    temp_dir: Path
    node_id: str
    raylet_pid: int


# How soon Ray declares a lost node dead: the GCS checks each raylet every second and gives it up
# after 3 failed checks in a row. Ray's defaults (every 3 s, 5 failures) take about 15 s, and the
# calls that Serve has in flight to the lost node's replicas hang until then (docs/multinode.md).
# On KubeRay these are the head container's environment (k8s/base/rayservice.yaml, checked by
# tests/infra/test_k8s_manifests.py); here the head's `ray start` gets the same variables.
NODE_FAILURE_DETECTION = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}


def ray_environment(config: dict[str, int]) -> dict[str, str]:
    """Ray settings as the environment variables Ray reads when it starts (`RAY_<name>`)."""
    return {f"RAY_{name}": str(value) for name, value in config.items()}


def _ray(*args: str, timeout_s: float = 180, env: dict[str, str] | None = None) -> None:
    done = subprocess.run([RAY, *args], capture_output=True, text=True, timeout=timeout_s, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def _common(temp_dir: Path, num_cpus: int, resources: dict[str, float], agent_port: int) -> list[str]:
    return [
        "--node-ip-address", "127.0.0.1",  # Ray resolves it to this machine's own address
        "--num-cpus", str(num_cpus),
        "--resources", json.dumps(resources),
        "--temp-dir", str(temp_dir),
        "--dashboard-agent-listen-port", str(agent_port),
        "--object-store-memory", str(100 * 2**20),
        "--disable-usage-stats",
    ]


def start_head(
    label: str, temp_dir: Path, *, gcs_port: int, dashboard_port: int, client_port: int, agent_port: int,
    num_cpus: int, resources: dict[str, float], ray_settings: dict[str, int] | None = None,
) -> LocalNode:
    """`ray start --head` with its dashboard on 127.0.0.1 (which `serve deploy` talks to);
    `ray_settings` override Ray's (e.g. NODE_FAILURE_DETECTION), given as KubeRay gives them: in
    the head's environment."""
    _ray(
        "start", "--head", "--port", str(gcs_port), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port),
        "--ray-client-server-port", str(client_port), *_common(temp_dir, num_cpus, resources, agent_port),
        env=ray_environment(ray_settings or {}),
    )
    return _started(label, temp_dir)


def start_worker(label: str, temp_dir: Path, *, address: str, agent_port: int, num_cpus: int, resources: dict[str, float]) -> LocalNode:
    """`ray start --address=…`: one more node of the cluster, on this machine."""
    _ray("start", f"--address={address}", *_common(temp_dir, num_cpus, resources, agent_port))
    return _started(label, temp_dir)


def _started(label: str, temp_dir: Path) -> LocalNode:
    raylet = raylet_process(temp_dir)
    node_id = next(arg.split("=", 1)[1] for arg in raylet.cmdline() if arg.startswith("--node_id="))
    return LocalNode(label=label, temp_dir=temp_dir, node_id=node_id, raylet_pid=raylet.pid)


def raylet_process(temp_dir: Path) -> psutil.Process:
    """The raylet whose sockets live in `temp_dir`: one per node, so one per temp dir here."""
    found = [
        p for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "raylet" and any(a.startswith("--raylet_socket_name=" + str(temp_dir)) for a in p.info["cmdline"] or [])
    ]
    if len(found) != 1:
        raise RuntimeError(f"expected one raylet under {temp_dir}, found {[p.pid for p in found]}")
    return found[0]


def crash(node: LocalNode) -> float:
    """SIGKILL the node's raylet, as if the machine had died; returns the moment (perf_counter)."""
    os.kill(node.raylet_pid, signal.SIGKILL)
    return time.perf_counter()


def processes_of(temp_root: Path, raylet_pids: set[int], gcs_port: int | None = None) -> list[psutil.Process]:
    """Every live process of the nodes under `temp_root`: by command line (the temp dir, or
    `--address=…:gcs_port`, all that the head's Ray Client server carries), descent, or parent raylet."""

    def ours(arg: str) -> bool:
        return str(temp_root) in arg or (gcs_port is not None and arg.startswith("--address=") and arg.endswith(f":{gcs_port}"))

    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(ours(a) for a in p.info["cmdline"] or []):
                found[p.pid] = p
                found.update((c.pid, c) for c in p.children(recursive=True))
            elif p.pid not in found and raylet_pids and p.environ().get("RAY_RAYLET_PID", "") in {str(r) for r in raylet_pids}:
                found[p.pid] = p
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return [p for p in found.values() if p.pid != os.getpid()]


def stop(temp_root: Path, raylet_pids: set[int], gcs_port: int | None = None, grace_s: float = 10) -> int:
    """End the nodes started under `temp_root` (SIGTERM, then SIGKILL after `grace_s`); how many processes."""
    procs = processes_of(temp_root, raylet_pids, gcs_port)
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    return len(procs)


def export_service_environment(database_url: str, temp_root: Path, gcs_port: int) -> str:
    """Set what the service's replicas read, before `ray start` (they inherit the environment):
    the database, fresh secrets, a data dir under `temp_root`. Returns the admin's password.
    Refuses to go on while Ray processes of an earlier run still use `temp_root`."""
    import secrets

    if processes_of(temp_root, set(), gcs_port):
        raise SystemExit(f"Ray processes of an earlier run still use {temp_root}: stop them first")
    password = secrets.token_urlsafe(18)
    os.environ.update({
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_worker_niceness": "0",
        "PRIMSCENE_DATABASE_URL": database_url,
        "PRIMSCENE_JWT_SECRET": secrets.token_urlsafe(48),
        "PRIMSCENE_ADMIN_PASSWORD": password,
        "PRIMSCENE_DATA_DIR": str(temp_root / "data"),
    })
    (temp_root / "data").mkdir(parents=True, exist_ok=True)
    return password

