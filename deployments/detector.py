"""The Detector deployment: one shipped detector per replica; concurrent calls are batched."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from ray import serve

from deployments.batching import one_outcome, predict_decodable
from deployments.contract import ImageRejected, ModelInfo, ModelPrediction
from deployments.cpu import share_cpu
from deployments.detector_runtime import DetectorConfig, PrimitiveDetector
from deployments.health import CHECK_PICTURE, KnownAnswer
from deployments.images import WARM_UP_IMAGE, ImageInput
from deployments.metrics import BatchMetrics
from deployments.runtimes import Runtime
from deployments.user_config import DetectorUserConfig

WARM_UP_BATCHES = 8  # batch sizes prepared at start: up to the dispatcher's default batch


@serve.deployment(name="Detector", max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.5})
class Detector:
    def __init__(self, weights: str, runtime: Runtime = "pytorch", threads: int = 1, niceness: int = 0) -> None:
        share_cpu(threads, niceness)
        # Ray hides GPUs from replicas that were given none (ray_actor_options.num_gpus).
        device = "cuda" if runtime == "pytorch" and torch.cuda.is_available() else "cpu"
        self.model = PrimitiveDetector(DetectorConfig(Path(weights), runtime=runtime, device=device, threads=threads))
        # The first calls build runtime state (OpenVINO compiles one model per batch size): not
        # in a user's request.
        for size in range(1, WARM_UP_BATCHES + 1):
            self.model.predict([WARM_UP_IMAGE] * size)
        self._batch_sizes = BatchMetrics("detector")
        # Every model call runs on this one thread: a compiled OpenVINO model must not be called
        # from several threads at once, and batches queue here in arrival order.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector")
        self._known_answer = KnownAnswer(
            "the detector", lambda: self.model.predict([CHECK_PICTURE])[0], lambda found: tuple(sorted(p.class_name for p in found))
        )

    def reconfigure(self, user_config: dict) -> None:
        config = DetectorUserConfig.model_validate(user_config or {})
        self.model.thresholds(config.confidence, config.iou, config.max_detections, config.class_agnostic_nms)
        self.model.tiles(config.tiling, config.tile_confidence)
        self._detect_batch.set_max_batch_size(config.max_batch_size)  # type: ignore[attr-defined]  # added by @serve.batch, not in its types
        self._detect_batch.set_batch_wait_timeout_s(config.batch_wait_timeout_s)  # type: ignore[attr-defined]  # likewise

    async def detect_many(self, images: list[ImageInput]) -> list[ModelPrediction | ImageRejected]:
        """Primitives in each image of a batch the dispatcher claimed; an image that cannot be
        decoded gets its ImageRejected in its place (the others are unaffected)."""
        self._batch_sizes.observe(len(images))
        return await asyncio.get_running_loop().run_in_executor(self._model_thread, self.predict_batch, images)

    async def detect(self, image: ImageInput) -> ModelPrediction:
        """Primitives in one image (`/models/.../predict`); concurrent calls are batched."""
        return one_outcome(await self._detect_batch(image))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _detect_batch(self, images: list[ImageInput]) -> list[ModelPrediction | ImageRejected]:
        return await self.detect_many(images)

    def predict_batch(self, images: list[ImageInput]) -> list[ModelPrediction | ImageRejected]:
        """The plain function behind `detect` (tested without Ray)."""
        return predict_decodable(
            images,
            lambda pictures, _: [ModelPrediction(model=self.model.version, primitives=p) for p in self.model.predict(pictures)],
        )

    def info(self) -> ModelInfo:
        return self.model.info()

    async def check_health(self) -> None:
        await self._known_answer.check(self._model_thread)
