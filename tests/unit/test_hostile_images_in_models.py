"""The replicas' model code (the Detector and Classifier deployments as the Serve app builds them,
in-process, no Ray) on the hostile-upload corpus (scripts/hostile_images.py): every upload the
ingress accepts is taken without raising, upright, boxes inside the picture; and a refused one that
somehow reached a replica fails cleanly. (The API side: tests/integration/test_hostile_uploads.py.)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

from deployments.contract import ImageRejected
from deployments.images import to_rgb
from deployments.vocabulary import SCENES
from serve_app.settings import LimitsSettings
from tests.support.hostile import corpus_for, found_at

if TYPE_CHECKING:  # imported by the fixtures (tests/unit/conftest.py says why)
    from deployments.classifier import Classifier
    from deployments.detector import Detector

# The corrupt-EXIF entries make Pillow warn while it skips the broken tags: expected here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning"),
    pytest.mark.filterwarnings("ignore:Tag data larger than file:UserWarning"),
]


def box_corners(p, width: int, height: int) -> list[tuple[float, float]]:
    """Corners, in pixels, of an oriented box given as the API gives it (normalised xywhr)."""
    cx, cy, w, h = p.x * width, p.y * height, p.width * width, p.height * height
    cos, sin = math.cos(p.rotation), math.sin(p.rotation)
    return [(cx + dx * cos - dy * sin, cy + dx * sin + dy * cos) for dx in (-w / 2, w / 2) for dy in (-h / 2, h / 2)]


def test_real_models_take_every_accepted_upload(deployed_detector: Detector, deployed_classifier: Classifier) -> None:
    detector, classifier = deployed_detector, deployed_classifier
    entries = [e for e in corpus_for(LimitsSettings()) if e.accepted]
    assert detector.model.config.runtime == "openvino_int8"  # what configs/*.yaml serve
    wrong = []
    batch = 8  # the replicas' max_batch_size: one hostile image must not spoil its batch-mates
    for start in range(0, len(entries), batch):
        group = entries[start : start + batch]
        images = [e.data for e in group]
        detections = detector.predict_batch(images)
        scenes = classifier.predict_batch(images, [getattr(d, "primitives", None) or [] for d in detections])
        for entry, detection, scene in zip(group, detections, scenes):
            if isinstance(detection, ImageRejected) or isinstance(scene, ImageRejected):
                wrong.append(f"{entry.name}: rejected by the models: {detection if isinstance(detection, ImageRejected) else scene}")
                continue
            width, height = entry.size
            decoded = to_rgb(entry.data).size
            if decoded != (width, height):
                wrong.append(f"{entry.name}: decoded as {decoded}, upright it is {entry.size}")
            slack = 0.02 * max(width, height)
            for p in detection.primitives:
                if not all(-slack <= x <= width + slack and -slack <= y <= height + slack for x, y in box_corners(p, width, height)):
                    wrong.append(f"{entry.name}: box outside the {width}×{height} picture: {p}")
            strong = [p.model_dump() for p in detection.primitives if p.confidence >= 0.5]
            if entry.shape_at and not found_at(strong, entry.shape_at):
                wrong.append(f"{entry.name}: shape not found at {entry.shape_at}: {detection.primitives[:3]}")
            if scene.scene is None or scene.scene.class_name not in SCENES:
                wrong.append(f"{entry.name}: no scene ({scene})")
    assert not wrong, "\n".join(wrong)


def test_replica_decoding_of_refused_uploads_fails_cleanly_if_one_ever_gets_there() -> None:
    """Defence in depth: the ingress refuses these, but should one reach a replica (e.g. stored
    under an older, looser limit) its decoding gives either a picture or ImageRejected, which
    fails the task at once; never another error, which would be retried."""
    wrong = []
    for entry in (e for e in corpus_for(LimitsSettings()) if not e.accepted):
        try:
            to_rgb(entry.data)
        except ImageRejected:
            pass
        except Exception as exc:  # any exception at all: that is what the test looks for
            wrong.append(f"{entry.name}: {type(exc).__name__}: {exc}")
    assert not wrong, "\n".join(wrong)
