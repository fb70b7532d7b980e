"""Two real Ray nodes in this process (`ray.cluster_utils.Cluster`, as Ray's own tests do): a
detector replica runs on the second node, the node is lost with tasks in flight, every task still
ends `succeeded` with one result, on the remaining node; a node added back gets the replica back.

Outside tests/serve on purpose: that package's session of `ray.init` must not be running while
this module has its own cluster (pytest ends the package's fixture before this module starts,
and this module's fixture ends its cluster before anything after it). `scripts/multinode.py`
does the same with `ray start` nodes, `serve deploy` of configs/cluster.yaml and a crashed raylet.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from scripts.chaos import checks, nodes
from scripts.chaos.clients import wait_ready
from tests.serve.support import API, free_port, held_out_image, test_environment, wait_for
from tests.support.databases import ADMIN_PASSWORD, migrated_postgres_database, run_outside_event_loop

APP = "primscene"
DATABASE = "primscene_test_multinode"
# Each node offers one detector slot and each detector replica takes one: of the two replicas,
# one must run on the second node, and with that node gone the other waits for a node to come.
SLOT = "detector_slot"
# A lost node is declared dead in seconds, as on KubeRay (NODE_FAILURE_DETECTION); the first check
# comes after a second too, as the second node joins just after the head.
FAST_NODE_FAILURE = {"health_check_initial_delay_ms": 1000, **nodes.NODE_FAILURE_DETECTION}


@dataclass
class TwoNodes:
    cluster: object  # ray.cluster_utils.Cluster
    head_id: str
    second: object  # ray._private.node.Node
    second_id: str


class _AddressFile:
    """`Cluster` writes its address to Ray's default temp dir and deletes it at the end, which
    would point `ray.init()` elsewhere on this machine at this cluster: put back what was there."""

    def __init__(self) -> None:
        from ray._common.utils import get_ray_address_file

        self.path = Path(get_ray_address_file(None))
        # `Cluster` fails writing it where no Ray has run before and made that dir (a new machine).
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.saved = self.path.read_text() if self.path.exists() else None

    def restore(self) -> None:
        if self.saved is None:
            self.path.unlink(missing_ok=True)
        else:
            self.path.write_text(self.saved)


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[TwoNodes]:
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # another module's session: never share it
        from ray import serve

        serve.shutdown()
        ray.shutdown()
    with test_environment():
        temp_dir = tempfile.mkdtemp(prefix="ray-mn-", dir="/tmp")  # short: Ray's socket paths have a length limit
        address_file = _AddressFile()
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 2, "resources": {"head": 1, SLOT: 1}, "temp_dir": temp_dir, "include_dashboard": True,
                "object_store_memory": 100 * 2**20, "_system_config": FAST_NODE_FAILURE,
                "dashboard_agent_listen_port": free_port(),  # not Ray's fixed default, which another cluster here may hold
            },
        )
        address_file.restore()
        try:
            # Connected while the head is the only node: the driver attaches to it, so removing the
            # second node spares the driver.
            ray.init(address=cluster.address, log_to_driver=False)
            second = cluster.add_node(num_cpus=2, resources={"node2": 1, SLOT: 1}, object_store_memory=100 * 2**20)
            cluster.wait_for_nodes()
            yield TwoNodes(cluster, cluster.head_node.node_id, second, second.node_id)
        finally:
            from ray import serve

            serve.shutdown()
            ray.shutdown()
            cluster.shutdown()
            address_file.restore()
            shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def database_url() -> str:
    return migrated_postgres_database(DATABASE)


def _deploy(database_url: str, data_dir: Path) -> str:
    """The application of `serve_app.app.build_app`, with placement options: the ingress, the
    dispatcher and the classifier on the head, two detector replicas on one slot each."""
    from ray import serve

    from deployments.classifier import Classifier
    from deployments.detector import Detector
    from serve_app.app import AppArgs
    from serve_app.dispatcher_deployment import DispatcherDeployment
    from serve_app.ingress import Ingress

    args = AppArgs(database_url=database_url, data_dir=data_dir)
    on_head = {"head": 0.01}
    detector = Detector.options(num_replicas=2, ray_actor_options={"num_cpus": 0.5, "resources": {SLOT: 1}}).bind(
        str(args.detector_weights), args.runtime, args.model_threads, args.model_niceness
    )
    classifier = Classifier.options(ray_actor_options={"num_cpus": 0.3, "resources": on_head}).bind(
        str(args.classifier_weights), args.model_threads, args.model_niceness
    )
    settings = args.settings()
    dispatcher = DispatcherDeployment.options(ray_actor_options={"num_cpus": 0.1, "resources": on_head}).bind(settings, detector, classifier)
    app = Ingress.options(ray_actor_options={"num_cpus": 0.2, "resources": on_head}).bind(settings, detector, classifier, dispatcher)
    port = free_port()
    # One proxy, on the head: this test is about the model replicas (the script covers a proxy per node).
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    serve.run(app, name=APP, route_prefix="/", blocking=False)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    return url


def _running_replicas(deployment: str) -> list[str]:
    """Node ids of the replicas of `deployment` whose actor is alive."""
    from ray.util.state import list_actors

    actors = list_actors(filters=[("class_name", "=", f"ServeReplica:{APP}:{deployment}"), ("state", "=", "ALIVE")], limit=100)
    return sorted(a.node_id for a in actors)


def _healthy(deployment: str, replicas: int) -> bool:
    from ray import serve

    status = serve.status().applications[APP].deployments[deployment]
    return status.status == "HEALTHY" and status.replica_states.get("RUNNING", 0) == replicas


def _eventually(condition, timeout_s: float, what: str) -> float:
    started, deadline = time.perf_counter(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return time.perf_counter() - started
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def _submit(url: str, token: dict[str, str], count: int, first: int) -> list[str]:
    """`count` images at once (16 connections), so that tasks wait in the queue."""

    async def submit_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=16)) as client:
            return await asyncio.gather(*(
                client.post(f"{API}/tasks", files={"image": ("i", held_out_image(first + i).encoded)}, headers=token)
                for i in range(count)
            ))

    responses = run_outside_event_loop(asyncio.run, submit_all())
    assert [r.status_code for r in responses] == [202] * count
    return [r.json()["id"] for r in responses]


def test_lost_node_loses_no_task_and_a_new_node_gets_the_replica_back(two_nodes: TwoNodes, database_url: str, tmp_path: Path) -> None:
    url = _deploy(database_url, tmp_path)
    head, second = two_nodes.head_id, two_nodes.second_id
    assert _running_replicas("Detector") == sorted([head, second])
    assert set(_running_replicas("Ingress") + _running_replicas("Classifier")) == {head}

    with httpx.Client(base_url=url, timeout=60) as http:
        login = http.post(f"{API}/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    token = {"Authorization": f"Bearer {login.json()['access_token']}"}
    ids = _submit(url, token, 30, first=0)
    _eventually(lambda: run_outside_event_loop(asyncio.run, checks.status_counts(database_url)).get("running", 0) >= 1, 60, "tasks running")
    counts = run_outside_event_loop(asyncio.run, checks.status_counts(database_url))
    removed_at = datetime.now(UTC)
    two_nodes.cluster.remove_node(two_nodes.second, allow_graceful=False)  # as a crash: no goodbye to the GCS

    with httpx.Client(base_url=url, timeout=60) as http:
        finished = wait_for(http, token, ids, timeout_s=120)
    database = run_outside_event_loop(asyncio.run, checks.integrity(database_url, ids))
    after = run_outside_event_loop(asyncio.run, checks.finished_since(database_url, ids, removed_at))
    print(f"\nsecond node removed with {counts}; all {len(ids)} finished; {after}; database: {database}")
    assert [t["status"] for t in finished.values()] == ["succeeded"] * len(ids)
    assert database["lost"] == 0 and database["with_result"] == len(ids) and database["duplicated_primitives"] == 0
    assert after["finished_after"] > 0  # work went on after the node was gone, on the head alone
    _eventually(lambda: _running_replicas("Detector") == [head], 30, "the lost detector replica known dead")

    started = time.perf_counter()
    third = two_nodes.cluster.add_node(num_cpus=2, resources={"node2": 1, SLOT: 1}, object_store_memory=100 * 2**20)
    _eventually(lambda: _running_replicas("Detector") == sorted([head, third.node_id]) and _healthy("Detector", 2), 120,
                "a detector replica on the added node")
    print(f"a detector replica runs on the added node {time.perf_counter() - started:.1f} s after it joined")
    more = _submit(url, token, 6, first=30)
    with httpx.Client(base_url=url, timeout=60) as http:
        assert [t["status"] for t in wait_for(http, token, more, timeout_s=60).values()] == ["succeeded"] * len(more)
