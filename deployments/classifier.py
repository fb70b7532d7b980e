"""The Classifier deployment: one shipped scene classifier per replica; calls are batched."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ray import serve

from deployments.user_config import ClassifierUserConfig
from deployments.classifier_runtime import ClassifierConfig, SceneClassifier
from deployments.contract import ModelInfo, ModelPrediction, Primitive
from deployments.cpu import share_cpu
from deployments.images import WARM_UP_IMAGE, ImageInput


@serve.deployment(name="Classifier", max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.3})
class Classifier:
    def __init__(self, weights: str, threads: int = 1, niceness: int = 0) -> None:
        share_cpu(threads, niceness)
        self.model = SceneClassifier(ClassifierConfig(Path(weights)))
        self.model.predict([WARM_UP_IMAGE], [[]])

    def reconfigure(self, user_config: dict) -> None:
        config = ClassifierUserConfig.model_validate(user_config or {})
        self.model.top_k = config.top_k
        self.classify.set_max_batch_size(config.max_batch_size)
        self.classify.set_batch_wait_timeout_s(config.batch_wait_timeout_s)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def classify(self, images: list[ImageInput], primitives: list[list[Primitive]]) -> list[ModelPrediction]:
        return await asyncio.to_thread(self.predict_batch, images, primitives)

    def predict_batch(self, images: list[ImageInput], primitives: list[list[Primitive]]) -> list[ModelPrediction]:
        """The plain function behind `classify` (tested without Ray)."""
        return [ModelPrediction(model=self.model.version, scene=scene) for scene in self.model.predict(images, primitives)]

    def info(self) -> ModelInfo:
        return self.model.info()

    def check_health(self) -> None:
        if self.model is None:
            raise RuntimeError("classifier model not loaded")
