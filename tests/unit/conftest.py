"""The shipped models, loaded once per test process, the Serve deployments around them, and the
held-out pictures they are tested on.

The model code (torch, timm, Ultralytics, OpenVINO: about 3 s of CPU) is imported inside the
fixtures and tests that use it, never at the top of a module: pytest-xdist makes every worker
collect every file, and `make test-fast` should not pay that import in each of them. The files
that load models are one xdist group (`MODELS_GROUP`), so one worker loads them, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from scripts.datagen.dataset import Sample, sample
from tests.support.models import CLASSIFIER, DETECTOR, TEST_ITEMS

if TYPE_CHECKING:
    from deployments.classifier import Classifier
    from deployments.classifier_runtime import SceneClassifier
    from deployments.detector import Detector
    from deployments.detector_runtime import PrimitiveDetector


@pytest.fixture(scope="session")
def detector() -> PrimitiveDetector:
    from deployments.detector_runtime import DetectorConfig, PrimitiveDetector

    return PrimitiveDetector(DetectorConfig(DETECTOR))


@pytest.fixture(scope="session")
def classifier() -> SceneClassifier:
    from deployments.classifier_runtime import ClassifierConfig, SceneClassifier

    return SceneClassifier(ClassifierConfig(CLASSIFIER))


@pytest.fixture(scope="session")
def samples() -> list[Sample]:
    return [sample(item) for item in TEST_ITEMS]


# The deployments' classes as the Serve app builds them (served default runtime and weights), one
# of each per test process: a detector compiles a model per batch size as it starts. Niceness 0, so
# that the test process keeps its priority. A test that breaks one must put it back.
@pytest.fixture(scope="session")
def deployed_detector() -> Detector:
    from deployments.detector import Detector
    from serve_app.app import AppArgs

    args = AppArgs()
    return Detector.func_or_class(str(args.detector_weights), args.runtime, 1, 0)


@pytest.fixture(scope="session")
def deployed_classifier() -> Classifier:
    from deployments.classifier import Classifier
    from serve_app.app import AppArgs

    args = AppArgs()
    return Classifier.func_or_class(str(args.classifier_weights), 1, 0)
