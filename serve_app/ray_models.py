"""The service's view of the models when they run as Ray Serve deployments: the pipeline graph
the dispatcher calls (detection, then classification with the detected primitives), and the
catalog behind `/models`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayError, RayTaskError
from ray.serve.handle import DeploymentHandle

from deployments.contract import ImagePayload, ModelInfo, ModelPrediction, ModelVersions, PipelineResult, UnknownModel
from serve_app.metrics import task_metrics

READY_TIMEOUT_S = 5.0
T = TypeVar("T")


# A replica that died (crash, OOM, node lost) takes the calls it was serving with it. Serve
# starts a replacement, so such a call is sent again a few times before the task's attempt fails.
REPLICA_LOST = (RayActorError, ActorUnavailableError)
REPLICA_RETRIES = 3
REPLICA_RETRY_WAIT_S = 1.0


async def replica_call(call: Callable[[], Awaitable[T]]) -> T:
    """Make a replica call and await its answer.

    - The replica died or cannot be reached: try again (`REPLICA_RETRIES` times, waiting a little
      longer each time), since the next try goes to a live replica or waits for the replacement.
      An image that itself kills replicas still fails after the retries, attempt by attempt.
    - The replica's own code raised: raise that exception itself; Ray's wrapper carries the
      remote traceback in its text, which must not reach a task's error or an HTTP answer."""
    for retry in range(REPLICA_RETRIES + 1):
        try:
            return await call()
        except REPLICA_LOST:
            if retry == REPLICA_RETRIES:
                raise
            await asyncio.sleep(REPLICA_RETRY_WAIT_S * (retry + 1))
        except RayTaskError as exc:
            if isinstance(exc.cause, Exception) and not isinstance(exc.cause, RayError):
                raise exc.cause from None
            raise
    raise AssertionError("unreachable")


class ServeBatchPipeline:
    """Runs a batch of images through the graph (the `BatchPipeline` of the contract): one
    detector call for the whole batch, then one classifier call with the detected primitives.

    The images go into Ray's object store once, as one object; both models read them from there
    (Ray resolves a top-level reference in the replica), and only the small primitives travel
    between them. The graph is composed here rather than in a deployment of its own: a
    forwarding replica would add a hop and CPU to every batch for nothing."""

    def __init__(self, detector: DeploymentHandle, classifier: DeploymentHandle) -> None:
        self._detector = detector
        self._classifier = classifier
        self._metrics = task_metrics()

    async def run_batch(self, images: list[ImagePayload]) -> list[PipelineResult | Exception]:
        stored = ray.put([image.data for image in images])
        started = time.perf_counter()
        detections = await replica_call(lambda: self._detector.detect_many.remote(stored))
        detected = time.perf_counter()
        found = [d.primitives if isinstance(d, ModelPrediction) else None for d in detections]
        scenes = await replica_call(lambda: self._classifier.classify_many.remote(stored, found)) if any(
            f is not None for f in found
        ) else [None] * len(images)
        self._metrics.stage.observe(detected - started, tags={"stage": "detection"})
        self._metrics.stage.observe(time.perf_counter() - detected, tags={"stage": "classification"})
        return [_combine(detection, scene) for detection, scene in zip(detections, scenes)]


def _combine(detection: ModelPrediction | Exception, scene: ModelPrediction | Exception | None) -> PipelineResult | Exception:
    if isinstance(detection, Exception):
        return detection
    if isinstance(scene, Exception):
        return scene
    if scene is None or detection.primitives is None or scene.scene is None:
        return RuntimeError("a model returned no prediction for this image")
    return PipelineResult(
        primitives=detection.primitives, scene=scene.scene, models=ModelVersions(detector=detection.model, classifier=scene.model)
    )


class ServeModelCatalog:
    def __init__(self, detector: DeploymentHandle, classifier: DeploymentHandle) -> None:
        self._detector = detector
        self._classifier = classifier
        self._infos: list[ModelInfo] | None = None

    async def list_models(self) -> list[ModelInfo]:
        if self._infos is None:  # fixed for the life of the deployments' weights
            self._infos = list(await asyncio.gather(self._detector.info.remote(), self._classifier.info.remote()))
        return self._infos

    async def predict(self, name: str, image: ImagePayload) -> ModelPrediction:
        detector, classifier = await self.list_models()
        if name == detector.name:
            return await replica_call(lambda: self._detector.detect.remote(image.data))
        if name == classifier.name:
            # The classifier reads the detector's primitives, as in a task; both are returned.
            detection = await replica_call(lambda: self._detector.detect.remote(image.data))
            classification = await replica_call(lambda: self._classifier.classify.remote(image.data, detection.primitives))
            return classification.model_copy(update={"primitives": detection.primitives})
        raise UnknownModel(name)

    async def ready(self) -> bool:
        try:
            await asyncio.wait_for(self.list_models(), READY_TIMEOUT_S)
        except Exception:
            return False
        return True
