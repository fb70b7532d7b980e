"""The shipped models, loaded once per test file, the Serve deployments around them, and the
held-out pictures they are tested on."""

from __future__ import annotations

import pytest

from deployments.classifier import Classifier
from deployments.classifier_runtime import ClassifierConfig, SceneClassifier
from deployments.detector import Detector
from deployments.detector_runtime import DetectorConfig, PrimitiveDetector
from scripts.datagen.dataset import Sample, sample
from serve_app.app import AppArgs
from tests.support.models import CLASSIFIER, DETECTOR, TEST_ITEMS


@pytest.fixture(scope="module")
def detector() -> PrimitiveDetector:
    return PrimitiveDetector(DetectorConfig(DETECTOR))


@pytest.fixture(scope="module")
def classifier() -> SceneClassifier:
    return SceneClassifier(ClassifierConfig(CLASSIFIER))


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return [sample(item) for item in TEST_ITEMS]


# The deployments' classes as the Serve app builds them (served default runtime and weights), one
# of each per test process: a detector compiles a model per batch size as it starts. Niceness 0, so
# that the test process keeps its priority. A test that breaks one must put it back.
@pytest.fixture(scope="session")
def deployed_detector() -> Detector:
    args = AppArgs()
    return Detector.func_or_class(str(args.detector_weights), args.runtime, 1, 0)


@pytest.fixture(scope="session")
def deployed_classifier() -> Classifier:
    args = AppArgs()
    return Classifier.func_or_class(str(args.classifier_weights), 1, 0)
