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
NEAR = 0.3  # below this IoU a detection is not about that object at all
MISS_KINDS = ("not found", "box too loose", "wrong class")
FALSE_KINDS = ("on nothing", "box too loose", "wrong class", "second box")
Truth = tuple[str, np.ndarray]  # a class name and the 4 corners of its box, in pixels
# How large an object is: the side of a square of its box's area over the image's longer side.
# At the detector's 480 px input the bands' bounds are 16, 24 and 40 px.
SIZE_BANDS = ((1 / 30, "under 1/30"), (1 / 20, "1/30 to 1/20"), (1 / 12, "1/20 to 1/12"), (math.inf, "1/12 and over"))


def corners(primitive: Primitive, width: int, height: int) -> np.ndarray:
    """The 4 corners of a detection in image pixels (`rotation` clockwise, y down)."""
    cx, cy, w, h = primitive.x * width, primitive.y * height, primitive.width * width, primitive.height * height
    c, s = math.cos(primitive.rotation), math.sin(primitive.rotation)
    local = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    return local @ np.array([[c, s], [-s, c]]) + (cx, cy)


def size_band(box: np.ndarray, width: int, height: int) -> str:
    side = math.sqrt(cv2.contourArea(box.astype(np.float32))) / max(width, height)
    return next(name for bound, name in SIZE_BANDS if side < bound)


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
    # What went wrong: each missed object and each false positive under one of MISS_KINDS or
    # FALSE_KINDS, and for a wrong class, which class was said for which.
    misses: Counter[str] = field(default_factory=Counter)
    false: Counter[str] = field(default_factory=Counter)
    mixups: Counter[tuple[str, str]] = field(default_factory=Counter)
    objects_by_size: Counter[str] = field(default_factory=Counter)
    right_by_size: Counter[str] = field(default_factory=Counter)

    def add(self, detected: list[Primitive], truths: list[Truth], width: int, height: int) -> None:
        boxes = [box for _, box in truths]
        self.truths.update(kind for kind, _ in truths)
        self.detections.update(p.class_name for p in detected)
        found = [corners(p, width, height) for p in detected]
        self.found_any_class += sum(any(iou(box, d) >= IOU for d in found) for box in boxes)
        free = set(range(len(truths)))
        wrong: list[tuple[Primitive, np.ndarray]] = []
        for primitive, box in sorted(zip(detected, found), key=lambda pair: -pair[0].confidence):
            best = max((i for i in free if truths[i][0] == primitive.class_name), key=lambda i: iou(boxes[i], box), default=None)
            if best is not None and iou(boxes[best], box) >= IOU:
                free.discard(best)
                self.right[primitive.class_name] += 1
            else:
                wrong.append((primitive, box))
        for i, box in enumerate(boxes):
            band = size_band(box, width, height)
            self.objects_by_size[band] += 1
            self.right_by_size[band] += i not in free
        overlaps = np.array([[iou(truth, box) for _, box in wrong] for truth in boxes]).reshape(len(boxes), len(wrong))
        for i in free:
            self._missed(truths[i][0], [(p.class_name, overlaps[i, j]) for j, (p, _) in enumerate(wrong)])
        for j, (primitive, _) in enumerate(wrong):
            self.false[self._false_kind(primitive.class_name, [(truths[i][0], overlaps[i, j], i in free) for i in range(len(boxes))])] += 1

    def _missed(self, kind: str, near: list[tuple[str, float]]) -> None:
        """`near`: (class said, IoU) of every unmatched detection, for one missed object."""
        other, said = max(((o, said) for said, o in near if said != kind), default=(0.0, ""))
        if other >= IOU:
            self.misses["wrong class"] += 1
            self.mixups[(kind, said)] += 1
        elif max((o for said, o in near if said == kind), default=0.0) >= NEAR:
            self.misses["box too loose"] += 1
        else:
            self.misses["not found"] += 1

    @staticmethod
    def _false_kind(said: str, truths: list[tuple[str, float, bool]]) -> str:
        """`truths`: (class, IoU with this detection, still unmatched) of every true object."""
        if any(o >= IOU and not unmatched for _, o, unmatched in truths):
            return "second box"  # on an object another detection found (of its class or another)
        if any(o >= IOU for _, o, _ in truths):
            return "wrong class"  # on an object nothing found: of another class, or it would have matched
        if any(o >= NEAR for _, o, _ in truths):
            return "box too loose"
        return "on nothing"

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
            "misses": {kind: self.misses[kind] for kind in MISS_KINDS},
            "false_positive_kinds": {kind: self.false[kind] for kind in FALSE_KINDS},
            "mixups": [{"true": t, "said": s, "count": n} for (t, s), n in self.mixups.most_common(8)],
            "recall_by_size": {band: {"objects": self.objects_by_size[band], "recall": ratio(self.right_by_size[band], self.objects_by_size[band])}
                for _, band in SIZE_BANDS},
        }
