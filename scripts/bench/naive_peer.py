"""The naive peer: the same two models behind one plain FastAPI endpoint in one process, run
synchronously for each request (no queue, no batching, no Ray), the way a first version would.

    uvicorn scripts.bench.naive_peer:app --port 8100

PyTorch eager, as the models come out of training, with torch's default threads (every core).
A `def` endpoint: FastAPI runs it in its thread pool, so concurrent requests run the models
concurrently and share the cores.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, UploadFile

from deployments.classifier_runtime import ClassifierConfig, SceneClassifier
from deployments.detector_runtime import DetectorConfig, PrimitiveDetector

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"

detector = PrimitiveDetector(DetectorConfig(WEIGHTS / "primitive-detector.pt", runtime="pytorch", threads=os.cpu_count() or 1))
classifier = SceneClassifier(ClassifierConfig(WEIGHTS / "scene-classifier.pt"))
app = FastAPI(title="naive peer")


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@app.post("/predict")
def predict(image: UploadFile) -> dict:
    data = image.file.read()
    [primitives] = detector.predict([data])
    [scene] = classifier.predict([data], [primitives])
    return {"primitives": [p.model_dump() for p in primitives], "scene": scene.model_dump()}
