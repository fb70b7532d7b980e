"""The raw pipeline: detector then classifier called in-process, no service around them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deployments.runtimes import RUNTIMES

# The model code is imported by the functions that run it: the benchmark's report and the tests
# import this module for `best` and `BATCH_SIZES` without paying for torch.
if TYPE_CHECKING:
    from deployments.classifier_runtime import SceneClassifier
    from deployments.detector_runtime import PrimitiveDetector

BATCH_SIZES = (1, 4, 8)


def _images_per_s(run, images: list[bytes], batch: int, repeats: int) -> tuple[float, float]:
    """(images per second, CPU milliseconds per image over every thread of this process)."""
    run(images[:batch])  # warm-up
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        for i in range(0, len(images), batch):
            run(images[i : i + batch])
    count = repeats * len(images)
    return round(count / (time.perf_counter() - started), 2), round((time.process_time() - cpu) * 1000 / count, 2)


def network_ms(weights: Path, threads: int, imgsz: int, repeats: int = 30) -> dict[str, float]:
    """Milliseconds per image of the detector network alone (one letterboxed 1×3×S×S input)."""
    from deployments.detector_backends import load_backend

    batch = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    out = {}
    for runtime in RUNTIMES:
        network = load_backend(weights / "primitive-detector.pt", runtime, threads)
        for _ in range(3):
            network(batch)
        started = time.perf_counter()
        for _ in range(repeats):
            network(batch)
        out[runtime] = round((time.perf_counter() - started) * 1000 / repeats, 2)
    return out


def measure(weights: Path, images: list[bytes], thread_counts: tuple[int, ...], repeats: int = 1) -> dict:
    """images/s of the detector alone and of the whole pipeline (decode, detect, classify), for
    each runtime, thread count and batch size; the uploads' encoded bytes go in, as in the service."""
    import torch

    from deployments.classifier_runtime import ClassifierConfig, SceneClassifier
    from deployments.detector_runtime import DetectorConfig, PrimitiveDetector

    results: dict = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)  # the classifier's (and PyTorch detector's) threads
        classifier = SceneClassifier(ClassifierConfig(weights / "scene-classifier.pt"))
        for runtime in RUNTIMES:
            detector = PrimitiveDetector(DetectorConfig(weights / "primitive-detector.pt", runtime=runtime, threads=threads))

            def pipeline(batch: list[bytes], detector: PrimitiveDetector = detector, classifier: SceneClassifier = classifier) -> None:
                classifier.predict(batch, detector.predict(batch))  # this loop's models, bound now

            for batch in BATCH_SIZES:
                detector_speed, _ = _images_per_s(detector.predict, images, batch, repeats)
                pipeline_speed, pipeline_cpu = _images_per_s(pipeline, images, batch, repeats)
                results.setdefault(runtime, []).append({
                    "threads": threads, "batch": batch,
                    "detector_images_per_s": detector_speed,
                    "pipeline_images_per_s": pipeline_speed,
                    "pipeline_cpu_ms_per_image": pipeline_cpu,
                })
    return results


def pipeline_row(weights: Path, images: list[bytes], runtime: str, threads: int, batch: int, repeats: int = 3) -> dict:
    """images/s and CPU ms per image of the whole pipeline in one configuration: the raw
    pipeline's turn in each round of the benchmark."""
    import torch

    from deployments.classifier_runtime import ClassifierConfig, SceneClassifier
    from deployments.detector_runtime import DetectorConfig, PrimitiveDetector

    torch.set_num_threads(threads)
    classifier = SceneClassifier(ClassifierConfig(weights / "scene-classifier.pt"))
    detector = PrimitiveDetector(DetectorConfig(weights / "primitive-detector.pt", runtime=runtime, threads=threads))
    speed, cpu = _images_per_s(lambda batch_: classifier.predict(batch_, detector.predict(batch_)), images, batch, repeats)
    return {"threads": threads, "batch": batch, "pipeline_images_per_s": speed, "pipeline_cpu_ms_per_image": cpu}


def best(rows: list[dict], key: str, threads: int | None = None) -> dict:
    """The fastest row (optionally among those with `threads`)."""
    return max((r for r in rows if threads is None or r["threads"] == threads), key=lambda r: r[key])
