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
