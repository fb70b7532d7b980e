"""The shipped models, through their runtime wrappers, on generated images they never saw."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from deployments.vocabulary import PRIMITIVES

if TYPE_CHECKING:  # imported by the fixtures (tests/unit/conftest.py says why)
    from deployments.classifier_runtime import SceneClassifier
    from deployments.detector_runtime import PrimitiveDetector


def _truth(s) -> list[tuple[str, float, float, float]]:
    """(class, centre x, centre y, shorter side), normalised like the detector's output."""
    w, h = s.image.size
    return [(o.shape.kind, o.box[0] / w, o.box[1] / h, min(o.box[2], o.box[3]) / max(w, h)) for o in s.objects]


def test_detector_finds_the_primitives_of_unseen_scenes(detector: PrimitiveDetector, samples) -> None:
    found = detector.predict([s.encoded for s in samples])
    matched = total = 0
    for s, primitives in zip(samples, found):
        for kind, x, y, side in _truth(s):
            total += 1
            matched += any(p.class_name == kind and abs(p.x - x) + abs(p.y - y) < side / 2 for p in primitives)
        assert all(0 <= p.confidence <= 1 and p.class_name in PRIMITIVES for p in primitives)
    # A sanity bar; the real measure is scripts/evaluate.py (docs/evaluation.md).
    assert matched / total >= 0.85, f"found {matched} of {total} primitives"


def _mosaic(samples, cell: int = 512) -> tuple[Image.Image, list[tuple[str, float, float, float]]]:
    """Nine held-out pictures side by side in one 1,536 px image: every figure a third of its
    usual share of the image, as in a large drawing with small figures. Its true figures with it."""
    canvas = Image.new("RGB", (3 * cell, 3 * cell), "white")
    truths = []
    for index, s in enumerate(samples[:9]):
        left, top = (index % 3) * cell, (index // 3) * cell
        canvas.paste(s.image, (left, top))
        w, h = s.image.size
        truths += [(kind, (left + x * w) / canvas.width, (top + y * h) / canvas.height, side * max(w, h) / canvas.width)
                   for kind, x, y, side in _truth(s)]
    return canvas, truths


def test_tiles_find_the_small_figures_of_a_large_image_once_each(detector: PrimitiveDetector, samples) -> None:
    canvas, truths = _mosaic(samples)

    def near(p, x, y, side) -> bool:
        return abs(p.x - x) + abs(p.y - y) < side / 2

    def found(primitives) -> int:
        return sum(any(p.class_name == kind and near(p, x, y, side) for p in primitives) for kind, x, y, side in truths)

    assert detector.tiling
    [tiled] = detector.predict([canvas])
    detector.tiles(False, detector.tile_confidence)
    try:
        [whole_only] = detector.predict([canvas])
    finally:
        detector.tiles(True, detector.tile_confidence)
    assert found(tiled) >= found(whole_only) + len(truths) // 10, (found(tiled), found(whole_only), len(truths))
    assert found(tiled) >= 0.8 * len(truths), (found(tiled), len(truths))
    # One box per figure, though tiles overlap and the whole-image pass sees the figure too: no two
    # boxes cover the same place.
    from scripts.scoring import corners, iou  # OpenCV: imported where used (conftest.py says why)

    boxes = [corners(p, canvas.width, canvas.height) for p in tiled]
    assert max(iou(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]) < 0.6


def test_classifier_names_unseen_scenes_from_detected_primitives(detector, classifier: SceneClassifier, samples) -> None:
    images = [s.encoded for s in samples]
    scenes = classifier.predict(images, detector.predict(images))
    correct = sum(scene.class_name == s.scene for scene, s in zip(scenes, samples))
    assert correct >= len(samples) - 2, [(scene.class_name, s.scene) for scene, s in zip(scenes, samples)]
    for scene in scenes:
        assert len(scene.top_k) == 3 and scene.top_k[0].class_name == scene.class_name
        assert scene.top_k[0].confidence >= scene.top_k[1].confidence >= scene.top_k[2].confidence


def test_wrappers_take_bytes_arrays_and_pictures_alike(detector, classifier, samples) -> None:
    s = samples[0]
    as_bytes, as_array, as_picture = detector.predict([s.encoded, np.asarray(Image.open(io.BytesIO(s.encoded)).convert("RGB")),
        Image.open(io.BytesIO(s.encoded))])
    assert as_bytes == as_array == as_picture
    assert detector.predict([]) == [] and classifier.predict([], []) == []


def test_loading_ultralytics_leaves_image_checks_alone(detector) -> None:
    """Ultralytics patches PIL.Image.open to install a HEIF plugin on unknown files; we undo it,
    so a bad image still gets our clear refusal instead of a missing-module error."""
    from deployments.contract import ImageRejected
    from deployments.images import to_rgb
    from serve_app.uploads import UploadRejected, validate_image

    with pytest.raises(UploadRejected) as refused:
        validate_image(b"\xff\xd8\xff" + b"\0" * 64, max_bytes=10**6, max_pixels=10**6)
    assert refused.value.status_code == 422
    with pytest.raises(ImageRejected):
        to_rgb(b"definitely not an image")
