"""The service's view of the models when they run as Ray Serve deployments: the pipeline graph
the dispatcher calls (detection, then classification with the detected primitives), and the
catalog behind `/models`."""

from __future__ import annotations

import asyncio

import ray
from ray.serve.handle import DeploymentHandle

from deployments.contract import ImagePayload, ModelInfo, ModelPrediction, ModelVersions, PipelineResult, UnknownModel

READY_TIMEOUT_S = 5.0


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
        detection = await self._detector.detect.remote(stored)
        classification = await self._classifier.classify.remote(stored, detection.primitives)
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
            return await self._detector.detect.remote(image.data)
        if name == classifier.name:
            # The classifier reads the detector's primitives, as in a task; both are returned.
            detection = await self._detector.detect.remote(image.data)
            classification = await self._classifier.classify.remote(image.data, detection.primitives)
            return classification.model_copy(update={"primitives": detection.primitives})
        raise UnknownModel(name)

    async def ready(self) -> bool:
        try:
            await asyncio.wait_for(self.list_models(), READY_TIMEOUT_S)
        except Exception:
            return False
        return True
