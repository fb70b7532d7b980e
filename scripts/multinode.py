"""Multi-node on one machine: a real two-node Ray cluster, `serve deploy` of configs/cluster.yaml
on PostgreSQL, and the second node lost under load, then added back.

    .venv/bin/python scripts/multinode.py     # about 3 minutes here; writes docs/multinode.json

Steps (every wait is bounded; traffic stays on this machine; HTTP and the dashboard on 127.0.0.1):
  1. a fresh, migrated PostgreSQL database (`--database-url`; dropped and created again each run);
  2. `ray start --head` (resource `head`) and `ray start --address=…` (resource `node2`), each in
     its own temp dir under `--temp-root`, on ports that leave other clusters here alone;
  3. `serve deploy` of a config derived from configs/cluster.yaml (production mode; the
     differences are printed and kept in the summary), and which node each replica runs on;
  4. load from retrying, idempotent clients (scripts/chaos/clients.py); once a quarter of it has
     succeeded, with tasks running, the second node's raylet is SIGKILLed by its process id, as
     a crashed machine; more clients submit during the outage; every accepted task must end
     `succeeded`, once (scripts/chaos/checks.py); how long each part of the recovery took;
  5. the node comes back (`ray start --address=…` again): where the replicas go by themselves,
     and a redeploy that puts the ingress back on it too.
Everything started here is stopped in `finally` (by temp dir, GCS port and process id, never
`ray stop`, which would end every Ray cluster on the machine); the database is kept to inspect.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

# Read by Ray when it is imported: the clusters here use token auth (the CLI's ~/.ray/auth_token).
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import httpx
import yaml

from db import migrate
from db.engine import create_engine, recreate_postgres_database, session_factory
from scripts.chaos import checks, nodes
from scripts.chaos.clients import Drive, create_users, drive
from scripts.check_serve_config import check as check_serve_config
from scripts.datagen.dataset import DEFAULT_SEED, Item, sample
from scripts.reliability import in_background
from serve_app.settings import QueueSettings

ROOT = Path(__file__).resolve().parents[1]
APP = "primscene"
SERVE = str(Path(sys.executable).with_name("serve"))


# The queue timings that configs/cluster.yaml sets for a cluster, which `--queue-defaults` drops.
QUEUE_TIMINGS = ("PRIMSCENE_LEASE_S", "PRIMSCENE_HEARTBEAT_S", "PRIMSCENE_RESCUE_INTERVAL_S")


def derive_config(base: dict, http_port: int, queue_defaults: bool = False) -> tuple[dict, list[dict]]:
    """configs/cluster.yaml made to fit two nodes on two cores; every difference, with its reason."""
    config, changes = copy.deepcopy(base), []

    def change(where: dict, key: str, value, path: str, why: str) -> None:
        changes.append({"key": path, "cluster.yaml": where.get(key), "here": value, "why": why})
        where[key] = value

    if queue_defaults:
        env = config["applications"][0]["runtime_env"]["env_vars"]
        for name in QUEUE_TIMINGS:
            changes.append({"key": f"runtime_env.env_vars.{name}", "cluster.yaml": env.pop(name, None), "here": None,
                            "why": "--queue-defaults: the settings' defaults, as before the cluster had its own"})

    change(config["http_options"], "host", "127.0.0.1", "http_options.host", "loopback only")
    change(config["http_options"], "port", http_port, "http_options.port", "8000 may be taken by another service here")
    deployments = {d["name"]: d for d in config["applications"][0]["deployments"]}
    for name, maximum in (("Detector", 8), ("Classifier", 4)):
        d = deployments[name]
        change(d["autoscaling_config"], "min_replicas", 2, f"{name}.autoscaling_config.min_replicas", "one replica per node")
        change(d["autoscaling_config"], "max_replicas", 2, f"{name}.autoscaling_config.max_replicas",
               f"instead of {maximum}: two physical cores")
        change(d, "max_replicas_per_node", 1, f"{name}.max_replicas_per_node",
               "spreads the model replicas: one runs on the second node for certain")
    check_serve_config(config)  # Ray's schema, and no unknown or renamed key
    return config, changes


class Cluster:
    """The two `ray start` nodes and the Serve application on them, seen through the dashboard."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dashboard = f"http://127.0.0.1:{args.dashboard_port}"
        self.address = f"127.0.0.1:{args.gcs_port}"
        self.url = f"http://127.0.0.1:{args.http_port}"
        self.nodes: list[nodes.LocalNode] = []

    def start_head(self) -> nodes.LocalNode:
        a = self.args
        node = nodes.start_head(
            "head", a.temp_root / "head", gcs_port=a.gcs_port, dashboard_port=a.dashboard_port, client_port=a.client_port,
            agent_port=a.agent_port, num_cpus=a.head_cpus, resources={"head": 1}, ray_settings=a.ray_settings,
        )
        self.nodes.append(node)
        return node

    def start_node2(self, label: str) -> nodes.LocalNode:
        node = nodes.start_worker(
            label, self.args.temp_root / label, address=self.address, agent_port=self.args.agent_port + len(self.nodes),
            num_cpus=self.args.node_cpus, resources={"node2": 1},
        )
        self.nodes.append(node)
        return node

    def labels(self) -> dict[str, str]:
        return {n.node_id: n.label for n in self.nodes}

    def node_states(self) -> dict[str, str]:
        from ray.util.state import list_nodes

        labels = self.labels()
        return {labels.get(n.node_id, n.node_id[:8]): n.state for n in list_nodes(address=self.dashboard, limit=100)}

    def serve_details(self) -> dict:
        from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

        return ServeSubmissionClient(self.dashboard).get_serve_details()

    def placement(self) -> dict:
        """Per deployment: its status and target, and the nodes of its replicas by state."""
        app = self.serve_details()["applications"].get(APP)
        if app is None:
            return {}
        labels, out = self.labels(), {"application": app["status"]}
        for name, d in sorted(app["deployments"].items()):
            replicas: dict[str, dict[str, int]] = {}
            for r in d["replicas"]:
                node = labels.get(r.get("node_id") or "", "unplaced" if not r.get("node_id") else r["node_id"][:8])
                by_node = replicas.setdefault(r["state"], {})
                by_node[node] = by_node.get(node, 0) + 1
            out[name] = {"status": d["status"], "target": d["target_num_replicas"], "replicas": replicas}
            if d["status"] != "HEALTHY" and d.get("message"):
                out[name]["message"] = d["message"][:300]
        return out

    def dispatcher_pids(self) -> dict[int, str]:
        """Dispatcher replica process id → node label (a task's `worker_id` carries its dispatcher's pid)."""
        app = self.serve_details()["applications"][APP]
        labels = self.labels()
        return {r["pid"]: labels.get(r["node_id"], "?") for r in app["deployments"]["Dispatcher"]["replicas"] if r.get("pid")}

    def replica_pids_on(self, node: nodes.LocalNode) -> list[int]:
        app = self.serve_details()["applications"][APP]
        return [r["pid"] for d in app["deployments"].values() for r in d["replicas"] if r.get("node_id") == node.node_id and r.get("pid")]

    def deploy(self, config: dict, name: str) -> None:
        path = self.args.temp_root / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        done = subprocess.run([SERVE, "deploy", str(path), "--address", self.dashboard], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"serve deploy failed:\n{done.stdout}\n{done.stderr}")

    def status_text(self) -> str:
        return subprocess.run([SERVE, "status", "--address", self.dashboard], capture_output=True, text=True, timeout=60).stdout

    def wait_running(self, timeout_s: float, until=None) -> float:
        """Until the application is RUNNING (and `until(placement)` holds) and /readyz answers 200."""
        started, deadline = time.perf_counter(), time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                placed = self.placement()
                if placed.get("application") == "RUNNING" and (until is None or until(placed)):
                    if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                        return round(time.perf_counter() - started, 1)
            except (httpx.HTTPError, RuntimeError, KeyError, OSError):
                pass
            time.sleep(1)
        raise TimeoutError(f"not running as expected within {timeout_s} s: {self.placement()}")


def running_by_node(database_url: str, dispatcher_pids: dict[int, str]) -> dict[str, int]:
    """Tasks `running` now, by the node of the Dispatcher replica that claimed them."""
    from sqlalchemy import func, select

    from db.models import Task

    async def query() -> list:
        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                stmt = select(Task.worker_id, func.count()).where(Task.status == "running").group_by(Task.worker_id)
                return (await session.execute(stmt)).all()
        finally:
            await engine.dispose()

    out: dict[str, int] = {}
    for worker_id, count in asyncio.run(query()):
        node = dispatcher_pids.get(int(worker_id.split(":")[1]), "?") if worker_id else "?"
        out[node] = out.get(node, 0) + count
    return out


def longest_pause(database_url: str, task_ids: list[str], since: datetime) -> float:
    """The longest time after `since` in which none of these tasks finished (a stall)."""
    from sqlalchemy import select

    from db.models import Task

    ids = [uuid.UUID(t) for t in task_ids]

    async def query() -> list[datetime]:
        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                stmt = select(Task.finished_at).where(Task.id.in_(ids), Task.finished_at > since).order_by(Task.finished_at)
                return list((await session.scalars(stmt)).all())
        finally:
            await engine.dispose()

    moments = [since, *asyncio.run(query())]
    return round(max((b - a).total_seconds() for a, b in zip(moments, moments[1:])), 2) if len(moments) > 1 else 0.0


def wait_busy(database_url: str, load, done_first: int, timeout_s: float = 120) -> dict[str, int]:
    """Wait until the service is in its stride (`done_first` tasks succeeded) with several tasks
    running; the counts then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not load.done():
        counts = asyncio.run(checks.status_counts(database_url))
        if counts.get("succeeded", 0) >= done_first and counts.get("running", 0) >= 4:
            return counts
        time.sleep(0.1)
    load.result()  # raises what stopped the clients, if anything did
    raise TimeoutError("the service never had several tasks running: more --tasks or --clients")


def drive_report(result: Drive) -> dict:
    return {"accepted": len(result.accepted), "unfinished": result.unfinished, "seconds": result.seconds,
            "submit_answers": dict(result.answers), "submit_retries": result.submit_retries}


def outage(cluster: Cluster, node2: nodes.LocalNode, tokens: list[str], images: list[bytes], report: dict) -> list[str]:
    """Load, the second node crashed under it, more load during the outage; returns the accepted ids."""
    a = cluster.args
    first = in_background(drive(cluster.url, tokens[: a.clients], images[: a.tasks], timeout_s=a.drive_timeout_s))
    report["status_at_kill"] = wait_busy(a.database_url, first, done_first=a.tasks // 4)
    report["running_by_dispatcher_node_at_kill"] = running_by_node(a.database_url, cluster.dispatcher_pids())
    victims = cluster.replica_pids_on(node2)
    wall_at_kill = datetime.now(UTC)
    killed = nodes.crash(node2)
    print(f"killed the raylet of {node2.label} (pid {node2.raylet_pid}) with {report['status_at_kill']} tasks", flush=True)
    during = in_background(drive(cluster.url, tokens[a.clients :], images[a.tasks :], timeout_s=a.drive_timeout_s))
    marks: dict[str, float] = {}
    deadline = time.monotonic() + a.drive_timeout_s
    while not (first.done() and during.done()) and time.monotonic() < deadline:
        now = round(time.perf_counter() - killed, 1)
        try:
            if "node_dead_s" not in marks and cluster.node_states().get(node2.label) == "DEAD":
                marks["node_dead_s"] = now
            placed = cluster.placement()
            on_dead = sum(n.get(node2.label, 0) for d in placed.values() if isinstance(d, dict) for n in d["replicas"].values())
            if "serve_dropped_dead_replicas_s" not in marks and on_dead == 0:
                marks["serve_dropped_dead_replicas_s"] = now
            ingress = placed.get("Ingress", {})
            if ("ingress_back_to_target_s" not in marks and "serve_dropped_dead_replicas_s" in marks
                    and sum(ingress.get("replicas", {}).get("RUNNING", {}).values()) == ingress.get("target")):
                marks["ingress_back_to_target_s"] = now
                report["placement_after_kill"] = placed
        except Exception as exc:  # the dashboard may be slow while a node dies: try again
            print(f"  (status not available: {exc})", flush=True)
        time.sleep(0.5)
    results = [first.result(), during.result()]
    marks["all_accepted_tasks_finished_s"] = round(time.perf_counter() - killed, 1)
    report["recovery"] = marks
    report["placement_during_outage"] = cluster.placement()
    report["load_before_kill"], report["load_during_outage"] = (drive_report(r) for r in results)
    accepted = results[0].accepted + results[1].accepted
    report["tasks"] = {**asyncio.run(checks.integrity(a.database_url, accepted)),
                       **asyncio.run(checks.finished_since(a.database_url, accepted, wall_at_kill)),
                       "longest_pause_without_a_finished_task_s": longest_pause(a.database_url, accepted, wall_at_kill)}
    left = [p for p in nodes.processes_of(node2.temp_dir, {node2.raylet_pid}) if p.pid != node2.raylet_pid]
    report["dead_node_replica_pids"] = victims
    report["dead_node_processes_left"] = sorted({f"{p.pid} {p.name()}" for p in left if p.is_running()})
    report["dead_node_replicas_still_alive"] = [pid for pid in victims if _alive(pid)]
    return accepted


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: a TIME_WAIT is no obstacle, a listener is
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def rejoin(cluster: Cluster, config: dict, report: dict) -> None:
    """Add the node back; what Serve places there by itself; then a redeploy that spreads the ingress."""
    a = cluster.args
    started = time.perf_counter()
    node = cluster.start_node2("node2-rejoined")
    label = node.label

    def models_back(placed: dict) -> bool:
        return all(placed.get(d, {}).get("replicas", {}).get("RUNNING", {}).get(label) for d in ("Detector", "Classifier"))

    cluster.wait_running(a.wait_timeout_s, until=models_back)
    report["models_back_on_rejoined_node_s"] = round(time.perf_counter() - started, 1)  # from `ray start`
    time.sleep(a.observe_s)  # does Serve move anything else there by itself?
    report["placement_after_rejoin"] = cluster.placement()
    ingress_there = report["placement_after_rejoin"]["Ingress"]["replicas"].get("RUNNING", {}).get(label, 0)
    report["ingress_moved_back_by_itself"] = ingress_there > 0
    if not ingress_there:
        spread = copy.deepcopy(config)
        ingress = next(d for d in spread["applications"][0]["deployments"] if d["name"] == "Ingress")
        ingress["max_replicas_per_node"] = 1
        check_serve_config(spread)
        started = time.perf_counter()
        cluster.deploy(spread, "cluster-multinode-spread.yaml")
        time.sleep(3)  # the new version reaches the controller

        def ingress_back(placed: dict) -> bool:
            return bool(placed.get("Ingress", {}).get("replicas", {}).get("RUNNING", {}).get(label)) and models_back(placed)

        cluster.wait_running(a.wait_timeout_s, until=ingress_back)
        report["redeploy_ingress_spread_s"] = round(time.perf_counter() - started, 1)
        report["redeploy"] = "Ingress.max_replicas_per_node: 1 (a rolling restart of the ingress)"
        report["placement_after_redeploy"] = cluster.placement()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=240, help="tasks submitted before the node is lost")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--outage-tasks", type=int, default=60, help="tasks submitted right after the node is lost")
    parser.add_argument("--outage-clients", type=int, default=4)
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/primscene_multinode")
    parser.add_argument("--temp-root", type=Path, default=Path("/tmp/primscene-multinode"), help="Ray temp dirs of the nodes")
    parser.add_argument("--gcs-port", type=int, default=6391)
    parser.add_argument("--dashboard-port", type=int, default=8291)
    parser.add_argument("--client-port", type=int, default=20291)
    parser.add_argument("--agent-port", type=int, default=52391, help="dashboard agent of the head; the next nodes take +1, +2")
    parser.add_argument("--http-port", type=int, default=8290)
    parser.add_argument("--head-cpus", type=int, default=4, help="logical CPUs of the head (all replicas fit on it alone)")
    parser.add_argument("--node-cpus", type=int, default=2, help="logical CPUs of the second node")
    parser.add_argument("--ray-node-failure", choices=["fast", "default"], default="fast",
                        help=f"fast: the head's environment has {nodes.ray_environment(nodes.NODE_FAILURE_DETECTION)}, as on "
                             "KubeRay (k8s/base/rayservice.yaml); default: Ray's own (about 15 s to declare a node dead)")
    parser.add_argument("--queue-defaults", action="store_true",
                        help=f"drop cluster.yaml's {', '.join(QUEUE_TIMINGS)} (the settings' defaults: a 30 s lease)")
    parser.add_argument("--observe-s", type=float, default=20, help="how long to watch for replicas moving by themselves")
    parser.add_argument("--wait-timeout-s", type=float, default=300)
    parser.add_argument("--drive-timeout-s", type=float, default=600)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "multinode.json")
    args = parser.parse_args()
    args.ray_settings = nodes.NODE_FAILURE_DETECTION if args.ray_node_failure == "fast" else {}

    # Exported before `ray start`: the replicas inherit them (cluster.yaml runs in production mode).
    admin_password = nodes.export_service_environment(args.database_url, args.temp_root, args.gcs_port)
    ports = [args.gcs_port, args.dashboard_port, args.client_port, args.http_port, *range(args.agent_port, args.agent_port + 3)]
    if taken := [port for port in ports if not _port_free(port)]:
        raise SystemExit(f"ports {taken} are in use here: choose others (see --help)")
    args.temp_root.mkdir(parents=True, exist_ok=True)
    (args.temp_root / "data").mkdir(exist_ok=True)
    asyncio.run(recreate_postgres_database(args.database_url))
    migrate.upgrade(args.database_url)

    base = yaml.safe_load((ROOT / "configs" / "cluster.yaml").read_text())
    config, changes = derive_config(base, args.http_port, args.queue_defaults)
    service_env = config["applications"][0]["runtime_env"]["env_vars"]
    queue = QueueSettings(**{name.removeprefix("PRIMSCENE_").lower(): value for name, value in service_env.items()
                             if name.removeprefix("PRIMSCENE_").lower() in QueueSettings.model_fields})
    report: dict = {"started_at": datetime.now().isoformat(timespec="seconds"), "command": " ".join(["scripts/multinode.py", *sys.argv[1:]]),
                    "config_changes_from_cluster_yaml": changes, "ray_head_environment": nodes.ray_environment(args.ray_settings),
                    "queue_settings": queue.model_dump(include={"lease_s", "heartbeat_s", "max_attempts", "rescue_interval_s"}),
                    "nodes": {"head": {"logical_cpus": args.head_cpus, "resources": {"head": 1}},
                              "node2": {"logical_cpus": args.node_cpus, "resources": {"node2": 1}}, "physical_cores": os.cpu_count()}}
    cluster = Cluster(args)
    started = time.perf_counter()
    try:
        cluster.start_head()
        node2 = cluster.start_node2("node2")
        report["cluster_started_s"] = round(time.perf_counter() - started, 1)
        cluster.deploy(config, "cluster-multinode.yaml")
        report["deploy_ready_s"] = cluster.wait_running(args.wait_timeout_s)
        report["placement_before"] = cluster.placement()
        print(cluster.status_text(), flush=True)
        print(f"placement before: {json.dumps(report['placement_before'])}", flush=True)
        images = [sample(Item("test", i, DEFAULT_SEED)).encoded for i in range(100)]
        tokens = asyncio.run(create_users(cluster.url, admin_password, args.clients + args.outage_clients, prefix="mn"))
        cycle = [images[i % len(images)] for i in range(args.tasks + args.outage_tasks)]
        accepted = outage(cluster, node2, tokens, cycle, report)
        print(f"outage: {json.dumps({k: report[k] for k in ('recovery', 'tasks')})}", flush=True)
        rejoin(cluster, config, report)
        report["tasks_final_check"] = asyncio.run(checks.integrity(args.database_url, accepted))
        print(cluster.status_text(), flush=True)
    finally:
        report["total_s"] = round(time.perf_counter() - started, 1)
        report["processes_stopped"] = nodes.stop(args.temp_root, {n.raylet_pid for n in cluster.nodes}, args.gcs_port)
        report["processes_left_after_stop"] = len(nodes.processes_of(args.temp_root, {n.raylet_pid for n in cluster.nodes}, args.gcs_port))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(json.dumps(report, indent=2, default=str))
        print(f"wrote {args.out}; database kept: {args.database_url}")


if __name__ == "__main__":
    main()
