"""The Detector deployment: one shipped detector per replica; concurrent calls are batched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import torch
from ray import serve

from deployments.user_config import DetectorUserConfig
from deployments.contract import ModelInfo, ModelPrediction
from deployments.cpu import share_cpu
from deployments.detector_runtime import DetectorConfig, PrimitiveDetector
from deployments.images import WARM_UP_IMAGE, ImageInput


@serve.deployment(name="Detector", max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.5})
class Detector:
    def __init__(self, weights: str, runtime: str = "pytorch", threads: int = 1, niceness: int = 0) -> None:
        share_cpu(threads, niceness)
        # Ray hides GPUs from replicas that were given none (ray_actor_options.num_gpus).
        device = "cuda" if runtime == "pytorch" and torch.cuda.is_available() else "cpu"
        self.model = PrimitiveDetector(DetectorConfig(Path(weights), runtime=runtime, device=device, threads=threads))
        self.model.predict([WARM_UP_IMAGE])  # the first call builds runtime state: not in a user's request

    def reconfigure(self, user_config: dict) -> None:
        config = DetectorUserConfig.model_validate(user_config or {})
        self.model.thresholds(config.confidence, config.iou, config.max_detections)
        self.detect.set_max_batch_size(config.max_batch_size)
        self.detect.set_batch_wait_timeout_s(config.batch_wait_timeout_s)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def detect(self, images: list[ImageInput]) -> list[ModelPrediction]:
        return await asyncio.to_thread(self.predict_batch, images)

    def predict_batch(self, images: list[ImageInput]) -> list[ModelPrediction]:
        """The plain function behind `detect` (tested without Ray)."""
        return [ModelPrediction(model=self.model.version, primitives=found) for found in self.model.predict(images)]

    def info(self) -> ModelInfo:
        return self.model.info()

    def check_health(self) -> None:
        if self.model is None:
            raise RuntimeError("detector model not loaded")
