"""The naive peer: the same two models behind one plain FastAPI endpoint in one process, run
synchronously for each request (no queue, no batching, no Ray), the way a user would write it.

    PRIMSCENE_PEER_RUNTIME=openvino_int8 uvicorn scripts.bench.naive_peer:app --port 8100

`PRIMSCENE_PEER_RUNTIME` picks the detector runtime: `pytorch` (eager, as the models come out
of training) or the service's own `openvino_int8` (default), each with every core
(`PRIMSCENE_PEER_THREADS`, default: the machine's CPU count). A `def` endpoint: FastAPI runs
it in its thread pool. OpenVINO's compiled model must not be called from several threads at
once (it hangs), so with OpenVINO a lock holds the two models for one request at a time;
PyTorch runs concurrent requests side by side, as before.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import torch
from fastapi import FastAPI, UploadFile

from deployments.classifier_runtime import ClassifierConfig, SceneClassifier
from deployments.detector_runtime import DetectorConfig, PrimitiveDetector

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
RUNTIME = os.environ.get("PRIMSCENE_PEER_RUNTIME", "openvino_int8")
THREADS = int(os.environ.get("PRIMSCENE_PEER_THREADS", str(os.cpu_count() or 1)))

torch.set_num_threads(THREADS)
detector = PrimitiveDetector(DetectorConfig(WEIGHTS / "primitive-detector.pt", runtime=RUNTIME, threads=THREADS))  # type: ignore[arg-type]
classifier = SceneClassifier(ClassifierConfig(WEIGHTS / "scene-classifier.pt"))
models_lock = threading.Lock() if RUNTIME.startswith("openvino") else contextlib.nullcontext()
app = FastAPI(title="naive peer")


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok", "runtime": RUNTIME}


@app.post("/predict")
def predict(image: UploadFile) -> dict:
    data = image.file.read()
    with models_lock:
        [primitives] = detector.predict([data])
        [scene] = classifier.predict([data], [primitives])
    return {"primitives": [p.model_dump() for p in primitives], "scene": scene.model_dump()}
