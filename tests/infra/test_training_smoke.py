"""Tiny training runs, so the training scripts cannot rot: a few images, one epoch each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from deployments.classifier_runtime import ClassifierConfig, SceneClassifier
from deployments.detector_runtime import DetectorConfig, PrimitiveDetector
from deployments.runtimes import RUNTIMES
from scripts.datagen.dataset import read_split, write_dataset
from scripts.train_detector import train
from tests.support.paths import PROJECT_ROOT as ROOT


def test_detector_and_classifier_training_run_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_dataset(data, {"train": 8, "val": 4}, seed=3, workers=1)
    weights = tmp_path / "weights"

    meta = train(data / "data.yaml", epochs=1, imgsz=64, batch=4, out=weights, runs=tmp_path / "runs", fraction=1.0, workers=0, version="smoke")
    assert meta["epochs"] == 1 and meta["data_seed"] == 3 and meta["train_images"] == 8
    for name in ("primitive-detector.pt", "primitive-detector.onnx", "primitive-detector.json", "primitive-detector_openvino_model/primitive-detector.xml"):
        assert (weights / name).stat().st_size > 0
    image = read_split(data, "val")[0].path.read_bytes()
    for runtime in RUNTIMES:
        detector = PrimitiveDetector(DetectorConfig(weights / "primitive-detector.pt", runtime=runtime))
        assert detector.version == "primitive-detector:smoke"
        assert len(detector.predict([image])) == 1

    subprocess.run(
        [sys.executable, "scripts/train_classifier.py", "--data", str(data), "--epochs", "1", "--limit", "8", "--out", str(weights), "--version", "smoke"],
        cwd=ROOT, check=True, capture_output=True, timeout=600,
    )
    for name in ("scene-classifier", "scene-classifier-image-only"):
        assert json.loads((weights / f"{name}.json").read_text())["train_images"] == 8
    [scene] = SceneClassifier(ClassifierConfig(weights / "scene-classifier.pt")).predict([image], [[]])
    assert scene.class_name and 0 <= scene.confidence <= 1
