"""The primitive detector: a batch of images in, oriented boxes in the API's form out.

Runs the shipped Ultralytics YOLO-OBB checkpoint with PyTorch, or its ONNX export with ONNX
Runtime; both go through the same Ultralytics pre- and post-processing (letterbox, NMS).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deployments import offline
from deployments.contract import ModelInfo, Primitive
from deployments.images import ImageInput, to_rgb

Runtime = Literal["pytorch", "onnx"]
WEIGHT_SUFFIX = {"pytorch": ".pt", "onnx": ".onnx"}


@dataclass(frozen=True)
class DetectorConfig:
    weights: Path  # the .pt checkpoint; the .onnx and .json sit beside it
    runtime: Runtime = "pytorch"
    confidence: float = 0.25
    iou: float = 0.5  # NMS overlap above which the weaker box is dropped
    max_detections: int = 100
    device: str = "cpu"  # "cuda" where a GPU is present (PyTorch runtime)


class PrimitiveDetector:
    def __init__(self, config: DetectorConfig) -> None:
        offline.configure_ultralytics()
        from ultralytics import YOLO

        self.config = config
        self.thresholds(config.confidence, config.iou, config.max_detections)
        self.meta = json.loads(config.weights.with_suffix(".json").read_text())
        self.classes: list[str] = self.meta["classes"]
        self.imgsz: int = self.meta["imgsz"]
        self._model = YOLO(str(config.weights.with_suffix(WEIGHT_SUFFIX[config.runtime])), task="obb")

    def thresholds(self, confidence: float, iou: float, max_detections: int) -> None:
        """Change the confidence and NMS thresholds (takes effect on the next batch)."""
        self.confidence, self.iou, self.max_detections = confidence, iou, max_detections

    @property
    def version(self) -> str:
        return f"{self.meta['name']}:{self.meta['version']}"

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.meta["name"], kind="detector", version=self.meta["version"], classes=self.classes, input_size=self.imgsz)

    def predict(self, images: list[ImageInput]) -> list[list[Primitive]]:
        """Primitives per image, most confident first; coordinates normalised to each image."""
        if not images:
            return []
        pictures = [to_rgb(image) for image in images]
        results = self._model.predict(
            pictures, imgsz=self.imgsz, conf=self.confidence, iou=self.iou,
            max_det=self.max_detections, device=self.config.device, verbose=False,
        )
        return [self._primitives(result) for result in results]

    def _primitives(self, result) -> list[Primitive]:
        height, width = result.orig_shape
        obb = result.obb
        found = []
        for (cx, cy, w, h, rotation), confidence, cls in zip(obb.xywhr.tolist(), obb.conf.tolist(), obb.cls.tolist()):
            found.append(
                Primitive(
                    class_id=int(cls), class_name=self.classes[int(cls)],
                    x=cx / width, y=cy / height, width=w / width, height=h / height,
                    rotation=rotation, confidence=min(1.0, max(0.0, confidence)),
                )
            )
        return sorted(found, key=lambda p: -p.confidence)
