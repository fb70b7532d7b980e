"""The Ray Serve async inference peer (scripts/bench/ray_async_peer.py) without a Ray cluster or
a broker: its handler's work on a real image, its status answers, its Serve config."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema, TaskResult
from ray.serve.task_processor import CeleryTaskProcessorAdapter

from deployments.contract import ImageRejected
from scripts.bench import ray_async_peer as peer
from scripts.bench.ray_async import serve_config
from scripts.benchmark import make_images


@pytest.fixture(scope="module")
def pipeline() -> peer.Pipeline:
    return peer.Pipeline(threads=1)


def test_handler_work_finds_primitives_and_a_scene(pipeline: peer.Pipeline) -> None:
    [image] = make_images(1)
    result = pipeline(base64.b64encode(image).decode("ascii"))
    assert json.loads(json.dumps(result)) == result  # what Celery's JSON result serializer stores
    assert result["primitives"], "the test image has primitives"
    assert {"class_name", "confidence", "x", "y", "rotation"} <= result["primitives"][0].keys()
    assert result["scene"]["class_name"] and result["scene"]["top_k"]


def test_handler_work_from_several_threads_at_once(pipeline: peer.Pipeline) -> None:
    """Celery's thread pool calls the handler concurrently; the detector lock keeps the
    compiled OpenVINO model to one caller at a time (it hangs otherwise)."""
    payloads = [base64.b64encode(image).decode("ascii") for image in make_images(4)]
    alone = [pipeline(p) for p in payloads]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(pipeline, payloads, timeout=120))
    assert [r["scene"]["class_name"] for r in together] == [r["scene"]["class_name"] for r in alone]
    assert [len(r["primitives"]) for r in together] == [len(r["primitives"]) for r in alone]


def test_undecodable_image_is_rejected(pipeline: peer.Pipeline) -> None:
    with pytest.raises(ImageRejected):
        pipeline(base64.b64encode(b"not an image").decode("ascii"))


def test_task_view_maps_celery_states() -> None:
    done = peer.task_view("a", TaskResult(id="a", status="SUCCESS", result={"scene": {}}))
    assert done == {"id": "a", "status": "succeeded", "result": {"scene": {}}}
    failed = peer.task_view("b", TaskResult(id="b", status="FAILURE", result=ValueError("boom")))
    assert failed["status"] == "failed" and "boom" in failed["result"]["error"]
    assert peer.task_view("c", TaskResult(id="c", status="PENDING", result=None))["status"] == "pending"


def test_adapter_accepts_the_custom_config() -> None:
    """The peer's app_custom_config avoids the keys the adapter reserves (it raises otherwise);
    no broker is contacted."""
    config = peer.PeerArgs(db=7).task_processor_config()
    assert config.adapter_config.broker_url == "redis://127.0.0.1:6379/7"
    CeleryTaskProcessorAdapter(config)


def test_serve_config_validates(tmp_path) -> None:
    path = serve_config(tmp_path / "peer.yaml", 8020, db=6)  # the defaults: the best setting measured
    config = yaml.safe_load(path.read_text())
    schema = ServeDeploySchema.model_validate(config)
    assert schema.http_options.port == 8020
    [app] = config["applications"]
    assert peer.PeerArgs.model_validate(app["args"]).url == "redis://127.0.0.1:6379/6"  # the builder accepts the args
    names = {d["name"] for d in app["deployments"]}
    assert names == {peer.AsyncIngress.name, peer._consumer(peer.PeerArgs().task_processor_config()).name}
    cpus = sum(d["ray_actor_options"]["num_cpus"] * d["num_replicas"] for d in app["deployments"])
    assert cpus <= 1.6 + 1e-9
