"""Scores detections against ground truth (the held-out split's labels or the foreign set's
figures): a detection is right when its oriented box overlaps a not yet matched true box by IoU
≥ 0.5 and names its class (greedy, most confident first, as detection benchmarks match)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from deployments.contract import Primitive
from deployments.vocabulary import PRIMITIVES

IOU = 0.5
Truth = tuple[str, np.ndarray]  # a class name and the 4 corners of its box, in pixels


def corners(primitive: Primitive, width: int, height: int) -> np.ndarray:
    """The 4 corners of a detection in image pixels (`rotation` clockwise, y down)."""
    cx, cy, w, h = primitive.x * width, primitive.y * height, primitive.width * width, primitive.height * height
    c, s = math.cos(primitive.rotation), math.sin(primitive.rotation)
    local = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    return local @ np.array([[c, s], [-s, c]]) + (cx, cy)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    inter, _ = cv2.intersectConvexConvex(cv2.convexHull(a32), cv2.convexHull(b32))
    union = cv2.contourArea(a32) + cv2.contourArea(b32) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Tally:
    """Counts over many images, per class."""

    truths: Counter[str] = field(default_factory=Counter)
    detections: Counter[str] = field(default_factory=Counter)
    right: Counter[str] = field(default_factory=Counter)  # box and class right
    found_any_class: int = 0  # true objects some detection covers, whatever class it says

    def add(self, detected: list[Primitive], truths: list[Truth], width: int, height: int) -> None:
        boxes = [box for _, box in truths]
        self.truths.update(kind for kind, _ in truths)
        self.detections.update(p.class_name for p in detected)
        found = [corners(p, width, height) for p in detected]
        self.found_any_class += sum(any(iou(box, d) >= IOU for d in found) for box in boxes)
        free = set(range(len(truths)))
        for primitive, box in sorted(zip(detected, found), key=lambda pair: -pair[0].confidence):
            best = max((i for i in free if truths[i][0] == primitive.class_name), key=lambda i: iou(boxes[i], box), default=None)
            if best is not None and iou(boxes[best], box) >= IOU:
                free.discard(best)
                self.right[primitive.class_name] += 1

    def report(self) -> dict:
        def ratio(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        per_class = {
            c: {"objects": self.truths[c], "detections": self.detections[c],
                "recall": ratio(self.right[c], self.truths[c]), "precision": ratio(self.right[c], self.detections[c])}
            for c in PRIMITIVES
        }
        right, truths, detections = sum(self.right.values()), sum(self.truths.values()), sum(self.detections.values())
        return {
            "objects": truths, "detections": detections,
            "recall": ratio(right, truths), "precision": ratio(right, detections),
            "false_positives": detections - right, "recall_any_class": ratio(self.found_any_class, truths),
            "per_class": per_class,
        }
