"""One real local Ray cluster for the whole package, and the Serve application on PostgreSQL
with the shipped models, reached over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.serve.support import DATABASE, METRICS_PORT, Service, free_port, test_environment
from tests.support.databases import ADMIN_PASSWORD, migrated_postgres_database


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[None]:
    import ray

    with test_environment():
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


@pytest.fixture(scope="package")
def database_url() -> str:
    return migrated_postgres_database(DATABASE)


@pytest.fixture(scope="package")
def service(ray_cluster, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Service:
    from ray import serve

    port = free_port()
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
