"""The shipped weights and the held-out pictures that the model tests run them on."""

from __future__ import annotations

from deployments.vocabulary import SCENES
from scripts.datagen.dataset import DEFAULT_SEED, Item
from tests.support.paths import PROJECT_ROOT

WEIGHTS = PROJECT_ROOT / "weights"
DETECTOR = WEIGHTS / "primitive-detector.pt"
CLASSIFIER = WEIGHTS / "scene-classifier.pt"
# Four images of every scene from the held-out test split.
TEST_ITEMS = [Item("test", i, DEFAULT_SEED) for i in range(4 * len(SCENES))]
