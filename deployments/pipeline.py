"""The Pipeline deployment: detection, then classification with the detected primitives.

The image goes into Ray's object store once (the caller puts it there); both models read it
from there by reference, and only the small primitives travel from detector to classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import ray
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.contract import ModelVersions, PipelineResult


@dataclass(frozen=True)
class StoredImage:
    """An image already in the object store. Wrapped, so that Ray hands the reference on
    instead of resolving it here; the models receive the bytes."""

    ref: ray.ObjectRef


@serve.deployment(name="Pipeline", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.05})
class Pipeline:
    def __init__(self, detector: DeploymentHandle, classifier: DeploymentHandle) -> None:
        self._detector = detector
        self._classifier = classifier

    async def run(self, image: StoredImage) -> PipelineResult:
        detection = await self._detector.detect.remote(image.ref)
        classification = await self._classifier.classify.remote(image.ref, detection.primitives)
        return PipelineResult(
            primitives=detection.primitives,
            scene=classification.scene,
            models=ModelVersions(detector=detection.model, classifier=classification.model),
        )
