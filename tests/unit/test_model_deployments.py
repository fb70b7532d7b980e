"""The Serve deployments' own code, called directly without Ray (Ray's local mode has no
batching): batched prediction with a poisoned image, and health checks that fail when the model
breaks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from deployments.contract import ImageRejected

if TYPE_CHECKING:  # imported by the fixtures (tests/unit/conftest.py says why)
    from deployments.classifier import Classifier
    from deployments.detector import Detector


def test_deployment_batch_functions_without_ray(deployed_detector: Detector, deployed_classifier: Classifier, samples) -> None:
    detector, classifier = deployed_detector, deployed_classifier
    images = [s.encoded for s in samples[:3]]
    detections = detector.predict_batch(images)
    assert [d.model for d in detections] == [detector.model.version] * 3
    scenes = classifier.predict_batch(images, [d.primitives for d in detections])
    assert all(s.scene is not None and s.model.startswith("scene-classifier:") for s in scenes)
    assert detector.info().kind == "detector" and classifier.info().kind == "classifier"

    # An image that cannot be decoded fails alone: the rest of its batch gets the same answers.
    poisoned = [images[0], b"\x89PNG\r\n\x1a\n" + bytes(300), images[1]]
    mixed = detector.predict_batch(poisoned)
    assert isinstance(mixed[1], ImageRejected)
    assert [mixed[0], mixed[2]] == detections[:2]
    mixed_scenes = classifier.predict_batch(poisoned, [detections[0].primitives, [], detections[1].primitives])
    assert isinstance(mixed_scenes[1], ImageRejected)
    # (batch composition may move float sums in the last digits)
    assert [(m.scene.class_name, round(m.scene.confidence, 3)) for m in (mixed_scenes[0], mixed_scenes[2])] == [
        (s.scene.class_name, round(s.scene.confidence, 3)) for s in scenes[:2]
    ]


@pytest.fixture
def breakable(deployed_detector: Detector, deployed_classifier: Classifier) -> Iterator[tuple[Detector, Classifier]]:
    """The file's deployments, with whatever a test broke in their models put back afterwards."""
    network, predict = deployed_detector.model._network, deployed_classifier.model.predict
    yield deployed_detector, deployed_classifier
    deployed_detector.model._network, deployed_classifier.model.predict = network, predict


async def test_a_broken_model_makes_its_replica_unhealthy(breakable: tuple[Detector, Classifier]) -> None:
    """The replicas' health checks run a picture through the model: they pass on a working one
    and fail when the runtime raises, hangs or starts answering differently."""
    detector, classifier = breakable
    assert detector._known_answer.expected, "the check picture should have shapes to find"
    await detector.check_health()
    await classifier.check_health()

    network = detector.model._network

    def raising(batch):
        raise RuntimeError("device lost")

    detector.model._network = raising
    with pytest.raises(RuntimeError, match="the detector failed on its health-check picture"):
        await detector.check_health()

    detector.model._network = lambda batch: network(batch) * 0  # answers, but finds nothing
    with pytest.raises(RuntimeError, match="answered its health-check picture with"):
        await detector.check_health()

    stuck = threading.Event()
    detector.model._network = lambda batch: stuck.wait(5) or network(batch)
    with pytest.raises(RuntimeError, match="did not answer its health-check picture within 0.5 s"):
        await detector._known_answer.check(detector._model_thread, budget_s=0.5)
    stuck.set()

    classifier.model.predict = lambda images, primitives: (_ for _ in ()).throw(RuntimeError("weights gone"))
    with pytest.raises(RuntimeError, match="the classifier failed"):
        await classifier.check_health()
