"""Ray Serve's own asynchronous inference, as a benchmark peer: what a Ray user would build
instead of Primscene by following Ray's guide (doc/source/serve/asynchronous-inference.md).

    serve run scripts.bench.ray_async_peer:app             (defaults: Redis db 5, port 8000)
    serve run <yaml from scripts.bench.ray_async.serve_config>     (what the benchmark does)

Two deployments, as in the guide's example:
- `AsyncIngress`, a FastAPI ingress: `POST /tasks` (multipart field `image`) enqueues a Celery
  task through the adapter's `enqueue_task_sync` with the image as base64 (Celery's JSON
  serializer takes no bytes) and answers 202 `{"id"}`; `GET /tasks/{id}` answers
  `{"id", "status", "result"}` from `get_task_status_sync`; `GET /healthz`.
- `AsyncConsumer`, `@serve.deployment` + `@task_consumer`: each replica runs a Celery worker
  (thread pool, concurrency = the deployment's `max_ongoing_requests`) whose
  `detect_and_classify` handler runs the service's models, the detector as OpenVINO INT8, one
  image per task (Celery has no batching).
Redis (`redis://127.0.0.1:6379/<db>`) is the broker and the result backend.

Settings measured on this 2-core machine (`scripts.bench.ray_async.drive`: 200 images from
`scripts.benchmark.make_images`, 32 closed-loop clients on the same machine polling every 50 ms;
ingress 1 replica, 0.2 CPU, max_ongoing_requests 256; model niceness 10, prefetch multiplier 1;
one run each, all 200 succeeded; the machine was shared, so expect some ±10 % noise):
- A: 1 consumer replica, 1.4 CPU, max_ongoing_requests 1, 2 model threads: 9.8 images/s
  (completion p50 3.1 s; another process was seen on a full core just after it: may be low)
- B: 1 consumer replica, 1.4 CPU, max_ongoing_requests 2, 1 model thread: 13.1 images/s
  (completion p50 2.4 s)
- C: 2 consumer replicas, 0.7 CPU each, max_ongoing_requests 1, 1 model thread: 13.9 images/s
  (completion p50 2.0 s)  <- the defaults
The consumer is not what limits it: over run B the models used 5.9 CPU-seconds (~30 ms an
image), the ingress replica 10.3 and Serve's HTTP proxy 6.6, answering the 32 clients' ~640
polls a second (each a Redis GET through `get_task_status_sync`) and the base64 submissions.

Concurrency and the lock: Celery's thread pool runs up to `max_ongoing_requests` handlers at
once in one replica, and one compiled OpenVINO model hangs when several threads call it at
once, so the detector call holds a `threading.Lock` (the classifier, PyTorch, and decoding run
outside it). C keeps one task at a time per replica and gets parallelism from two replicas,
each with its own compiled model, so detector calls never wait on each other; in B the lock
lets one task's classifier overlap another's detector but serializes the detectors. The lock
stays for anyone who raises max_ongoing_requests.
"""

# `@serve.ingress` freezes the FastAPI app with cloudpickle when the class is decorated
# (ray/serve/api.py, `frozen_app_or_func`): its endpoints then see only the module globals that
# existed at that moment and that their code names. Hence everything they use is defined above
# AsyncIngress, and no `from __future__ import annotations` (FastAPI could not resolve the
# string "UploadFile" in the replica: the upload would turn into a required query parameter).
import base64
import os
import threading
from pathlib import Path

from fastapi import FastAPI, HTTPException, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application
from ray.serve.schema import CeleryAdapterConfig, TaskProcessorConfig, TaskResult
from ray.serve.task_consumer import instantiate_adapter_from_config, task_consumer, task_handler

from deployments.contract import ImageRejected
from deployments.cpu import share_cpu
from deployments.images import WARM_UP_IMAGE

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
TASK_NAME = "detect_and_classify"

# Celery's states (celery.states) as the benchmark's clients read them; the rest pass through
# lower-cased ("pending" also answers an id Celery never saw: it cannot tell them apart).
STATUS = {"SUCCESS": "succeeded", "FAILURE": "failed", "REVOKED": "failed"}


def task_view(task_id: str, task: TaskResult) -> dict:
    """`GET /tasks/{id}`'s answer from the adapter's TaskResult: the result once succeeded, the
    error once failed (Celery's result is then the exception), else none."""
    status = STATUS.get(task.status, task.status.lower())
    if status == "succeeded":
        result = task.result
    elif status == "failed":
        result = {"error": repr(task.result)}
    else:
        result = None
    return {"id": task_id, "status": status, "result": result}


class PeerArgs(BaseModel):
    """A Serve config's `args:` for `build_app`. Unset: RAY_ASYNC_PEER_REDIS / RAY_ASYNC_PEER_DB."""

    model_config = ConfigDict(extra="forbid")

    redis: str = Field(default_factory=lambda: os.environ.get("RAY_ASYNC_PEER_REDIS", "redis://127.0.0.1:6379"))
    db: int = Field(default_factory=lambda: int(os.environ.get("RAY_ASYNC_PEER_DB", "5")), ge=0, le=15)
    queue: str = "primscene_peer"
    model_threads: int = Field(1, ge=1, description="CPU threads of each model (OpenVINO, torch) per consumer replica.")
    model_niceness: int = Field(10, ge=0, le=19, description="Unix nice of consumer replicas, as Primscene's model replicas.")
    prefetch: int = Field(1, ge=0, description="Celery worker_prefetch_multiplier (messages reserved per worker thread).")
    max_retries: int = 3

    @property
    def url(self) -> str:
        return f"{self.redis.rstrip('/')}/{self.db}"

    def task_processor_config(self) -> TaskProcessorConfig:
        return TaskProcessorConfig(
            queue_name=self.queue,
            adapter_config=CeleryAdapterConfig(
                broker_url=self.url,
                backend_url=self.url,
                # Not in the adapter's reserved keys (task_processor.py CELERY_DEFAULT_APP_CONFIG):
                # worker_pool, worker_concurrency, acks_late and reject_on_worker_lost are fixed.
                app_custom_config={
                    "worker_prefetch_multiplier": self.prefetch,
                    "worker_hijack_root_logger": False,  # leave Ray's logging alone
                    "broker_connection_retry_on_startup": True,
                    "result_expires": 3600,
                },
                # An undecodable upload fails at once instead of 3 retries with backoff.
                task_custom_config={"dont_autoretry_for": (ImageRejected,)},
            ),
            max_retries=self.max_retries,
            failed_task_queue_name=f"{self.queue}_failed",
        )


class Pipeline:
    """The handler's work without Ray or Celery: base64 JPEG in, JSON-able result out."""

    def __init__(self, threads: int = 1) -> None:
        # The models are imported here, where they run: the ingress replica imports this module
        # too and needs no torch (over a second to import, and memory in every replica).
        from deployments.classifier_runtime import ClassifierConfig, SceneClassifier
        from deployments.detector_runtime import DetectorConfig, PrimitiveDetector

        self.detector = PrimitiveDetector(DetectorConfig(WEIGHTS / "primitive-detector.pt", runtime="openvino_int8", threads=threads))
        self.classifier = SceneClassifier(ClassifierConfig(WEIGHTS / "scene-classifier.pt"))
        # One compiled OpenVINO model hangs when several threads call it at once; Celery's
        # thread pool runs up to max_ongoing_requests handlers at once.
        self._detector_lock = threading.Lock()
        with self._detector_lock:
            self.detector.predict([WARM_UP_IMAGE])  # first call builds runtime state

    def __call__(self, image_b64: str) -> dict:
        data = base64.b64decode(image_b64, validate=True)
        with self._detector_lock:
            [primitives] = self.detector.predict([data])
        [scene] = self.classifier.predict([data], [primitives])
        return {"primitives": [p.model_dump() for p in primitives], "scene": scene.model_dump()}


def _consumer(config: TaskProcessorConfig):
    """The consumer deployment for `config` (`@task_consumer` takes its config when the class
    is defined, so the class is made per application)."""

    @serve.deployment(name="AsyncConsumer", num_replicas=2, max_ongoing_requests=1, ray_actor_options={"num_cpus": 0.7})
    @task_consumer(task_processor_config=config)
    class AsyncConsumer:
        def __init__(self, threads: int = 1, niceness: int = 0) -> None:
            share_cpu(threads, niceness)
            self.pipeline = Pipeline(threads)

        @task_handler(name=TASK_NAME)
        def detect_and_classify(self, image_b64: str) -> dict:
            return self.pipeline(image_b64)

    return AsyncConsumer


fastapi_app = FastAPI(title="Ray Serve async inference peer")


@serve.deployment(name="AsyncIngress", num_replicas=1, max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.2})
@serve.ingress(fastapi_app)
class AsyncIngress:
    def __init__(self, config: TaskProcessorConfig, consumer) -> None:
        # `consumer` is only there to make the consumer part of the application graph (as in
        # Ray's guide); tasks reach it through the broker, never through the handle.
        self.adapter = instantiate_adapter_from_config(config)

    @fastapi_app.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok"}

    @fastapi_app.post("/tasks", status_code=202)
    def submit(self, image: UploadFile) -> dict:
        data = image.file.read()
        if not data:
            raise HTTPException(422, "empty image")
        task = self.adapter.enqueue_task_sync(TASK_NAME, kwargs={"image_b64": base64.b64encode(data).decode("ascii")})
        return {"id": task.id}

    @fastapi_app.get("/tasks/{task_id}")
    def status(self, task_id: str) -> dict:
        return task_view(task_id, self.adapter.get_task_status_sync(task_id))


def build_app(args: dict | PeerArgs | None = None) -> Application:
    args = PeerArgs.model_validate(args or {})
    config = args.task_processor_config()
    consumer = _consumer(config).bind(args.model_threads, args.model_niceness)
    return AsyncIngress.bind(config, consumer)


app = build_app()
