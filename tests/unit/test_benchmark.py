"""The benchmark's parts work, so `scripts/benchmark.py` cannot rot between runs. (Its figures
are measured by running it; nothing here is timed.)"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from deployments.runtimes import RUNTIMES
from scripts.bench import raw
from scripts.bench.load import percentiles
from scripts.bench.processes import Server
from scripts.benchmark import make_images, median, serve_config
from scripts.check_serve_config import check_file
from tests.support.paths import PROJECT_ROOT as ROOT


@pytest.mark.parametrize("batching", [True, False])
def test_benchmark_configs_are_the_local_config_with_its_changes(tmp_path: Path, batching: bool) -> None:
    path = serve_config(tmp_path / "bench.yaml", 8123, runtime="pytorch", batching=batching)
    check_file(path)  # Ray's schema and our strict keys
    config = yaml.safe_load(path.read_text())
    app = config["applications"][0]
    assert config["http_options"]["port"] == 8123 and app["args"]["runtime"] == "pytorch"
    batch_sizes = [d["user_config"]["max_batch_size"] for d in app["deployments"] if "user_config" in d]
    assert batch_sizes and all((size > 1) == batching for size in batch_sizes)


def test_server_memory_is_split_by_kind_of_process(tmp_path: Path) -> None:
    """A server and the child it starts are both counted, each under its own kind."""
    parent = "import subprocess, time; subprocess.Popen(['sleep', '30']); time.sleep(30)"
    server = Server([sys.executable, "-c", parent], env={}, log=tmp_path / "server.log", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 10
        while "sleep" not in server.memory_mb()["pss_by_role"] and time.monotonic() < deadline:
            time.sleep(0.1)
        memory = server.memory_mb()
    finally:
        server.stop(timeout_s=5)
    assert set(memory["pss_by_role"]) == {"-c", "sleep"}  # a `python -c` is named by its first argument
    assert sum(memory["pss_by_role"].values()) == pytest.approx(memory["pss"], abs=0.5)
    assert memory["rss"] >= memory["pss"] > 0


def test_percentiles_of_known_values() -> None:
    assert percentiles(list(range(1, 101))) == {"p50": 50.5, "p95": 95.0, "p99": 99.0, "max": 100}
    assert percentiles([]) == {}


def test_raw_pipeline_measures_every_runtime_on_real_weights() -> None:
    rows = raw.measure(ROOT / "weights", make_images(2), thread_counts=(1,))
    assert tuple(rows) == RUNTIMES
    for runtime_rows in rows.values():
        assert [r["batch"] for r in runtime_rows] == list(raw.BATCH_SIZES)
        assert all(r["detector_images_per_s"] > 0 and r["pipeline_images_per_s"] > 0 for r in runtime_rows)


def test_raw_pipeline_in_one_configuration_measures_speed_and_cpu() -> None:
    row = raw.pipeline_row(ROOT / "weights", make_images(4), "openvino_int8", threads=1, batch=2, repeats=1)
    assert (row["threads"], row["batch"]) == (1, 2)
    assert row["pipeline_images_per_s"] > 0 and row["pipeline_cpu_ms_per_image"] > 0


def test_paired_ratios_take_the_median_round() -> None:
    assert median([0.9, 1.3, 1.1]) == 1.1
    assert median([2.0]) == 2.0


async def test_naive_peer_answers_with_primitives_and_a_scene() -> None:
    from scripts.bench.naive_peer import app

    [image] = make_images(1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://peer") as client:
        response = await client.post("/predict", files={"image": ("a.jpg", image, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["primitives"] and body["scene"]["class_name"]
