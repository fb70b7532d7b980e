"""The primitive detector: a batch of images in, oriented boxes in the API's form out.

The same steps for every runtime: Ultralytics' letterbox to a square input, the network on the
chosen backend (PyTorch, ONNX Runtime or OpenVINO), Ultralytics' rotated NMS, and boxes scaled
back to each image; large images get a second look in tiles (`deployments/tiling.py`). Doing
this here rather than through `YOLO.predict` keeps one code path for all runtimes and lets each
run with the threads its replica owns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deployments import offline, tiling
from deployments.contract import ModelInfo, Primitive
from deployments.detector_backends import load_backend
from deployments.images import ImageInput, to_rgb
from deployments.runtimes import Runtime


@dataclass(frozen=True)
class DetectorConfig:
    weights: Path  # the .pt checkpoint; the exports and the .json sit beside it
    runtime: Runtime = "pytorch"
    confidence: float = 0.25
    iou: float = 0.5  # NMS overlap above which the weaker box is dropped
    max_detections: int = 100
    # One box per shape, whatever classes it resembles; per-class NMS let one shape come back
    # as a pentagon and a hexagon (docs/evaluation.md measures both).
    class_agnostic_nms: bool = True
    # Large images are also seen in tiles; a tile's box is kept from this confidence up.
    tiling: bool = True
    tile_confidence: float = 0.5
    device: str = "cpu"  # "cuda" where a GPU is present (PyTorch runtime)
    threads: int = 1  # CPU threads for the network

# Images per network call: the OpenVINO backend compiles one model per batch size, and the
# Detector prepares sizes 1 to 8 at start, so tiles never ask for a new one mid-request.
NETWORK_BATCH = 8


class PrimitiveDetector:
    def __init__(self, config: DetectorConfig) -> None:
        offline.configure_ultralytics()
        from ultralytics.data.augment import LetterBox
        from ultralytics.utils import ops
        from ultralytics.utils.nms import non_max_suppression

        self.config = config
        self.thresholds(config.confidence, config.iou, config.max_detections, config.class_agnostic_nms)
        self.tiles(config.tiling, config.tile_confidence)
        self.meta = json.loads(config.weights.with_suffix(".json").read_text())
        self.classes: list[str] = self.meta["classes"]
        self.imgsz: int = self.meta["imgsz"]
        self._letterbox = LetterBox((self.imgsz, self.imgsz), auto=False, stride=32)
        self._nms, self._scale_boxes = non_max_suppression, ops.scale_boxes  # imported once, not per batch
        self._network = load_backend(config.weights, config.runtime, config.threads, config.device)

    def thresholds(self, confidence: float, iou: float, max_detections: int, class_agnostic_nms: bool = True) -> None:
        """Change the confidence and NMS settings (takes effect on the next batch)."""
        self.confidence, self.iou, self.max_detections = confidence, iou, max_detections
        self.class_agnostic_nms = class_agnostic_nms

    def tiles(self, enabled: bool, confidence: float) -> None:
        """Turn the tiled second look at large images on or off (takes effect on the next batch)."""
        self.tiling, self.tile_confidence = enabled, confidence

    @property
    def version(self) -> str:
        return f"{self.meta['name']}:{self.meta['version']}"

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.meta["name"], kind="detector", version=self.meta["version"], classes=self.classes, input_size=self.imgsz)

    def predict(self, images: Sequence[ImageInput]) -> list[list[Primitive]]:
        """Primitives per image, most confident first; coordinates normalised to each image."""
        if not images:
            return []
        pictures = [np.asarray(to_rgb(image)) for image in images]
        plans = [tiling.plan(picture.shape[0], picture.shape[1], self.imgsz) if self.tiling else [] for picture in pictures]
        crops = [picture[t.y : t.y + t.height, t.x : t.x + t.width] for picture, plan in zip(pictures, plans) for t in plan]
        inputs = pictures + crops
        found = [rows for start in range(0, len(inputs), NETWORK_BATCH) for rows in self._detect(inputs[start : start + NETWORK_BATCH])]
        tile_rows = iter(found[len(pictures) :])
        results = []
        for picture, plan, rows in zip(pictures, plans, found):
            height, width = picture.shape[:2]
            boxes = self._image_boxes(rows, (height, width))
            if plan:
                from_tiles = [
                    tiling.keep_from_tile(self._image_boxes(next(tile_rows), (t.height, t.width)), t, height, width, min_confidence=self.tile_confidence)
                    for t in plan
                ]
                boxes = tiling.merge(boxes, from_tiles, self.iou)[: self.max_detections]
            results.append(self._primitives(boxes, (height, width)))
        return results

    def _detect(self, pictures: list[np.ndarray]) -> list:
        """NMS rows (x, y, w, h, confidence, class, angle) in letterbox pixels, one tensor per picture."""
        letterboxed = np.stack([np.asarray(self._letterbox(image=picture)) for picture in pictures])
        batch = np.empty((len(pictures), 3, self.imgsz, self.imgsz), dtype=np.float32)
        np.divide(letterboxed.transpose(0, 3, 1, 2), 255, out=batch, dtype=np.float32)  # NHWC bytes → NCHW [0, 1] in one pass
        raw = self._network(batch)
        return self._nms(
            raw, self.confidence, self.iou, max_det=self.max_detections, nc=len(self.classes), rotated=True, agnostic=self.class_agnostic_nms,
        )

    def _image_boxes(self, rows, shape: tuple[int, int]):
        """NMS rows with their boxes scaled from letterbox pixels to the picture's."""
        boxes = rows.clone()
        boxes[:, :4] = self._scale_boxes((self.imgsz, self.imgsz), rows[:, :4].clone(), shape, xywh=True)
        return boxes

    def _primitives(self, boxes, shape: tuple[int, int]) -> list[Primitive]:
        """Rows (x, y, w, h, confidence, class, angle) in the image's pixels → API primitives."""
        height, width = shape
        found = [
            Primitive(
                class_id=int(cls), class_name=self.classes[int(cls)],
                x=cx / width, y=cy / height, width=w / width, height=h / height,
                rotation=rotation, confidence=min(1.0, max(0.0, confidence)),
            )
            for (cx, cy, w, h), confidence, cls, rotation in zip(
                boxes[:, :4].tolist(), boxes[:, 4].tolist(), boxes[:, 5].tolist(), boxes[:, 6].tolist()
            )
        ]
        return sorted(found, key=lambda p: -p.confidence)
