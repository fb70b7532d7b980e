"""One real local Ray cluster for the whole session, and the Serve application on PostgreSQL
with the shipped models, reached over real HTTP."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from db import migrate
from scripts.chaos.clients import wait_ready
from tests.conftest import ADMIN_PASSWORD, fresh_postgres_database, run_outside_event_loop

APP = "primscene"
# Its own database: the running app's dispatcher must not take other tests' tasks.
DATABASE = "primscene_test_serve"
METRICS_PORT = 18087  # where the local Ray node serves Prometheus metrics in these tests
QUEUE_BOUND = 40  # unfinished tasks per user; small enough for a flood to reach
# Short leases and backoffs, so that fault tests recover in seconds rather than minutes.
TEST_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "PRIMSCENE_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "PRIMSCENE_LEASE_S": "4",
    "PRIMSCENE_HEARTBEAT_S": "1",
    "PRIMSCENE_RETRY_BACKOFF_S": "0.2",
    "PRIMSCENE_RESCUE_INTERVAL_S": "1",
    "PRIMSCENE_MAX_ATTEMPTS": "5",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    url: str
    data_dir: Path
    database_url: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def deploy(self, **args) -> None:
        from ray import serve

        from serve_app.app import AppArgs, build_app

        args = {"max_queued_per_user": QUEUE_BOUND, **args}
        app_args = AppArgs(database_url=self.database_url, data_dir=self.data_dir, **args)
        serve.run(build_app(app_args), name=APP, route_prefix="/", blocking=False)
        wait_ready(self.url)


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[None]:
    import ray

    saved = {k: os.environ.get(k) for k in TEST_ENVIRONMENT}
    os.environ.update(TEST_ENVIRONMENT)
    # Logical CPUs: replicas ask for fractions; the real work shares the machine's cores.
    # Metrics exported on a known port, every second, as Ray Serve's own tests do.
    ray.init(
        num_cpus=4, include_dashboard=False, object_store_memory=150 * 2**20, log_to_driver=False,
        _metrics_export_port=METRICS_PORT, _system_config={"metrics_report_interval_ms": 1000},
    )
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="package")
def database_url() -> str:
    import asyncio

    url = run_outside_event_loop(asyncio.run, fresh_postgres_database(DATABASE))
    run_outside_event_loop(migrate.upgrade, url)
    return url


@pytest.fixture(scope="package")
def service(ray_cluster, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Service:
    from ray import serve

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    started = time.perf_counter()
    svc = Service(url=f"http://127.0.0.1:{port}", data_dir=tmp_path_factory.mktemp("serve-data"), database_url=database_url)
    svc.deploy()
    print(f"\nServe application ready in {time.perf_counter() - started:.1f} s")
    return svc


@pytest.fixture
def http(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture
def token(http: httpx.Client) -> dict[str, str]:
    response = http.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
