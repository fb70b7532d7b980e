"""The Classifier deployment: one shipped scene classifier per replica; calls are batched."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ray import serve

from deployments.batching import one_outcome, predict_decodable
from deployments.classifier_runtime import ClassifierConfig, SceneClassifier
from deployments.contract import ImageRejected, ModelInfo, ModelPrediction, Primitive
from deployments.cpu import share_cpu
from deployments.health import CHECK_PICTURE, KnownAnswer
from deployments.images import WARM_UP_IMAGE, ImageInput
from deployments.metrics import BatchMetrics
from deployments.user_config import ClassifierUserConfig


@serve.deployment(name="Classifier", max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.3})
class Classifier:
    def __init__(self, weights: str, threads: int = 1, niceness: int = 0) -> None:
        share_cpu(threads, niceness)
        self.model = SceneClassifier(ClassifierConfig(Path(weights)))
        self.model.predict([WARM_UP_IMAGE], [[]])
        self._batch_sizes = BatchMetrics("classifier")
        # One thread for every model call, so batches never compete for the replica's cores.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classifier")
        self._known_answer = KnownAnswer("the classifier", lambda: self.model.predict([CHECK_PICTURE], [[]])[0], lambda scene: scene.class_name)

    def reconfigure(self, user_config: dict) -> None:
        config = ClassifierUserConfig.model_validate(user_config or {})
        self.model.top_k = config.top_k
        self._classify_batch.set_max_batch_size(config.max_batch_size)  # type: ignore[attr-defined]  # added by @serve.batch, not in its types
        self._classify_batch.set_batch_wait_timeout_s(config.batch_wait_timeout_s)  # type: ignore[attr-defined]  # likewise

    async def classify_many(
        self, images: list[ImageInput], primitives: list[list[Primitive] | None]
    ) -> list[ModelPrediction | ImageRejected | None]:
        """The scene of each image of a batch, given its primitives; None in place of an image
        whose primitives are None (its detection failed), ImageRejected where one cannot be
        decoded (the others are unaffected)."""
        positions = [i for i, found in enumerate(primitives) if found is not None]
        self._batch_sizes.observe(len(positions))
        chosen = [images[i] for i in positions], [primitives[i] or [] for i in positions]
        scenes = iter(await asyncio.get_running_loop().run_in_executor(self._model_thread, self.predict_batch, *chosen))
        return [next(scenes) if found is not None else None for found in primitives]

    async def classify(self, image: ImageInput, primitives: list[Primitive]) -> ModelPrediction:
        """The scene of one image (`/models/.../predict`); concurrent calls are batched."""
        return one_outcome(await self._classify_batch((image, primitives)))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _classify_batch(self, requests: list[tuple[ImageInput, list[Primitive]]]) -> list[ModelPrediction | ImageRejected]:
        primitives: list[list[Primitive] | None] = [found for _, found in requests]
        return await self.classify_many([image for image, _ in requests], primitives)  # type: ignore[return-value]  # none are None

    def predict_batch(self, images: list[ImageInput], primitives: list[list[Primitive]]) -> list[ModelPrediction | ImageRejected]:
        """The plain function behind `classify` (tested without Ray)."""

        def predict(pictures: list, positions: list[int]) -> list[ModelPrediction]:
            scenes = self.model.predict(pictures, [primitives[i] for i in positions])
            return [ModelPrediction(model=self.model.version, scene=scene) for scene in scenes]

        # The classifier's input is a few dozen pixels: JPEGs are decoded at a reduced scale.
        return predict_decodable(images, predict, at_least=self.model.imgsz)

    def info(self) -> ModelInfo:
        return self.model.info()

    async def check_health(self) -> None:
        await self._known_answer.check(self._model_thread)
