"""The service's view of the models when they run as Ray Serve deployments: the pipeline graph
the dispatcher calls (detection, then classification with the detected primitives), and the
catalog behind `/models`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import ray
from ray.exceptions import RayError, RayTaskError
from ray.serve.handle import DeploymentHandle

from deployments.contract import ImagePayload, ModelInfo, ModelPrediction, ModelVersions, PipelineResult, UnknownModel

READY_TIMEOUT_S = 5.0
T = TypeVar("T")


async def replica_call(response: Awaitable[T]) -> T:
    """Await a replica's answer. When the replica's own code raised, raise that exception itself:
    Ray's wrapper carries the remote traceback in its text, which must not reach a task's error
    or an HTTP answer."""
    try:
        return await response
    except RayTaskError as exc:
        if isinstance(exc.cause, Exception) and not isinstance(exc.cause, RayError):
            raise exc.cause from None
        raise


class ServePipeline:
    """Runs one image through the graph (the `Pipeline` callable of the contract).

    The image goes into Ray's object store once; both models read it from there (Ray resolves a
    top-level reference in the replica), and only the small primitives travel between them.
    The graph is composed here rather than in a deployment of its own: a forwarding replica
    would add a hop and CPU to every task for nothing (docs/benchmarks.md)."""

    def __init__(self, detector: DeploymentHandle, classifier: DeploymentHandle) -> None:
        self._detector = detector
        self._classifier = classifier

    async def __call__(self, image: ImagePayload) -> PipelineResult:
        stored = ray.put(image.data)
        detection = await replica_call(self._detector.detect.remote(stored))
        classification = await replica_call(self._classifier.classify.remote(stored, detection.primitives))
        return PipelineResult(
            primitives=detection.primitives,
            scene=classification.scene,
            models=ModelVersions(detector=detection.model, classifier=classification.model),
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
            return await replica_call(self._detector.detect.remote(image.data))
        if name == classifier.name:
            # The classifier reads the detector's primitives, as in a task; both are returned.
            detection = await replica_call(self._detector.detect.remote(image.data))
            classification = await replica_call(self._classifier.classify.remote(image.data, detection.primitives))
            return classification.model_copy(update={"primitives": detection.primitives})
        raise UnknownModel(name)

    async def ready(self) -> bool:
        try:
            await asyncio.wait_for(self.list_models(), READY_TIMEOUT_S)
        except Exception:
            return False
        return True
