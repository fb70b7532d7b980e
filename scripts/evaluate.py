"""Evaluate the shipped models on the held-out test split and on the foreign set, and write a report.

    python scripts/evaluate.py

Detector: mAP50, mAP50-95 and per-class AP (Ultralytics' OBB validator) for every runtime; and on
both sets, recall and precision per class at rotated IoU 0.5 with class-agnostic and per-class
NMS (`scripts/scoring.py`). The foreign set (`scripts/foreign`, drawn with OpenCV by code the
training data never came from) is only ever used here. Classifier: accuracy and confusion matrix with ground-truth
primitives and end to end with detected ones, and the image-only twin, so the value of running
detection first is measured. Writes docs/evaluation.{md,json} and docs/confusion-*.png. The test
split is generated (deterministically, from the seed in the detector's metadata) if it is missing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file from anywhere

from deployments import offline
from deployments.classifier_runtime import ClassifierConfig, SceneClassifier
from deployments.contract import Primitive
from deployments.detector_backends import weights_for
from deployments.detector_runtime import DetectorConfig, PrimitiveDetector
from deployments.runtimes import RUNTIMES
from deployments.vocabulary import PRIMITIVES, SCENES
from scripts.datagen.dataset import DEFAULT_COUNTS, DEFAULT_SEED, read_split, write_dataset
from scripts.foreign import render as foreign
from scripts.scoring import IOU, NEAR, SIZE_BANDS, Tally, Truth, corners

BATCH = 16
FOREIGN_IMAGES = 350  # 50 per scene
# Each mode: NMS across classes or not, and the tiled second look at large images on or off.
DETECTION_MODES = {"class_agnostic": (True, True), "per_class": (False, True), "class_agnostic_untiled": (True, False)}


def ensure_test_split(root: Path) -> None:
    if not (root / "images" / "test").exists():
        print(f"generating the test split ({DEFAULT_COUNTS['test']} images, seed {DEFAULT_SEED}) in {root}", flush=True)
        write_dataset(root, {"test": DEFAULT_COUNTS["test"]}, DEFAULT_SEED)


def evaluate_detector(weights: Path, root: Path, runtime: str, imgsz: int) -> dict:
    offline.configure_ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(weights_for(weights, runtime)), task="obb")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "test.yaml"
        data.write_text(json.dumps({"path": str(root.resolve()), "train": "images/test", "val": "images/test", "names": dict(enumerate(PRIMITIVES))}))
        metrics = model.val(data=str(data), split="val", imgsz=imgsz, batch=BATCH if runtime == "pytorch" else 1, device="cpu", plots=False,
            verbose=False, project=tmp, name="val")
    box = metrics.box
    per_class = {PRIMITIVES[c]: {"ap50": round(float(box.ap50[i]), 4), "ap50_95": round(float(box.ap[i]), 4)} for i, c in enumerate(box.ap_class_index)}
    return {"map50": round(float(box.map50), 4), "map50_95": round(float(box.map), 4), "per_class": per_class}


def _cpu_has_bf16() -> bool:
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _confusion_png(matrix: list[list[int]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(SCENES)), SCENES, rotation=45, ha="right")
    ax.set_yticks(range(len(SCENES)), SCENES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if value:
                ax.text(j, i, str(value), ha="center", va="center", color="white" if value > max(map(max, matrix)) / 2 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _score(predicted: list[str], truth: list[str]) -> dict:
    matrix = [[0] * len(SCENES) for _ in SCENES]
    for p, t in zip(predicted, truth):
        matrix[SCENES.index(t)][SCENES.index(p)] += 1
    accuracy = sum(p == t for p, t in zip(predicted, truth)) / len(truth)
    return {"accuracy": round(accuracy, 4), "confusion": matrix}


def evaluate_classifier(weights: Path, baseline: Path, detector: PrimitiveDetector, root: Path) -> dict:
    items = read_split(root, "test")
    images = [item.path.read_bytes() for item in items]
    truth = [item.scene for item in items]
    fused = SceneClassifier(ClassifierConfig(weights))
    image_only = SceneClassifier(ClassifierConfig(baseline))
    detected, with_truth, end_to_end, alone = [], [], [], []
    for start in range(0, len(items), BATCH):
        batch = images[start : start + BATCH]
        found = detector.predict(batch)
        detected += found
        with_truth += [s.class_name for s in fused.predict(batch, [i.primitives for i in items[start : start + BATCH]])]
        end_to_end += [s.class_name for s in fused.predict(batch, found)]
        alone += [s.class_name for s in image_only.predict(batch, [[] for _ in batch])]
    return {
        "test_images": len(items),
        "ground_truth_primitives": _score(with_truth, truth),
        "end_to_end": _score(end_to_end, truth),
        "image_only": _score(alone, truth),
    }


@dataclass(frozen=True)
class Scored:
    """An image with what should be found in it."""

    data: bytes
    scene: str
    truths: list[Truth]
    width: int
    height: int
    conditions: dict[str, str] = field(default_factory=dict)  # how it was drawn (the foreign set's)


def held_out_set(root: Path) -> list[Scored]:
    scored = []
    for item in read_split(root, "test"):
        with Image.open(item.path) as image:
            width, height = image.size
        truths = [(p.class_name, corners(p, width, height)) for p in item.primitives]
        scored.append(Scored(item.path.read_bytes(), item.scene, truths, width, height))
    return scored


def foreign_set(count: int) -> list[Scored]:
    scored = []
    for index in range(count):
        drawn = foreign.draw(index)
        with Image.open(io.BytesIO(drawn.encoded)) as image:
            width, height = image.size
        scored.append(Scored(drawn.encoded, drawn.scene, [(f.kind, f.box()) for f in drawn.figures], width, height, drawn.conditions))
    return scored


def detect_all(detector: PrimitiveDetector, images: list[Scored]) -> list[list[Primitive]]:
    """The detector's primitives for every image, with its current settings, in batches."""
    return [found for start in range(0, len(images), BATCH) for found in detector.predict([i.data for i in images[start : start + BATCH]])]


def _tally(images: list[Scored], found: list[list[Primitive]]) -> Tally:
    tally = Tally()
    for detected, image in zip(found, images, strict=True):
        tally.add(detected, image.truths, image.width, image.height)
    return tally


def score_primitives(detector: PrimitiveDetector, images: list[Scored]) -> tuple[dict, list[list[Primitive]]]:
    """Recall and precision per class in each mode of NMS and tiling (the detector's own settings
    are restored), the seconds each took, and the detections of its own mode, for the scores that follow."""
    default = (detector.class_agnostic_nms, detector.tiling)
    scores: dict = {}
    own: list[list[Primitive]] = []
    for mode, (agnostic, tiled) in DETECTION_MODES.items():
        detector.thresholds(detector.confidence, detector.iou, detector.max_detections, agnostic)
        detector.tiles(tiled, detector.tile_confidence)
        started = time.perf_counter()
        found = detect_all(detector, images)
        scores[mode] = {**_tally(images, found).report(), "seconds": round(time.perf_counter() - started, 1)}
        if (agnostic, tiled) == default:
            own = found
    detector.thresholds(detector.confidence, detector.iou, detector.max_detections, default[0])
    detector.tiles(default[1], detector.tile_confidence)
    return scores, own


def score_by_condition(images: list[Scored], found: list[list[Primitive]]) -> dict:
    """The detections scored apart for each value of each drawing condition (paper, pen, fill,
    photo effects...): where the misses and false positives come from."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, image in enumerate(images):
        for condition in image.conditions.items():
            groups[condition].append(index)
    scores: dict[str, dict[str, dict]] = {}
    for (name, value), indices in sorted(groups.items()):
        tally = _tally([images[i] for i in indices], [found[i] for i in indices])
        scores.setdefault(name, {})[value] = {"images": len(indices), **tally.report()}
    return scores


def scenes_end_to_end(weights: Path, images: list[Scored], found: list[list[Primitive]]) -> dict:
    """Scene accuracy with the detector's primitives (`found`, one list per image) as input."""
    classifier = SceneClassifier(ClassifierConfig(weights))
    predicted = []
    for start in range(0, len(images), BATCH):
        batch = images[start : start + BATCH]
        predicted += [s.class_name for s in classifier.predict([i.data for i in batch], found[start : start + BATCH])]
    return _score(predicted, [i.scene for i in images])


def _primitive_rows(scores: dict) -> list[str]:
    rows = []
    for mode, tally in scores.items():
        label = mode.removesuffix("_untiled").replace("_", "-") + " NMS" + (", no tiles" if mode.endswith("_untiled") else "")
        rows.append(f"| {label} | {tally['recall']:.3f} | {tally['precision']:.3f} | "
                    f"{tally['recall_any_class']:.3f} | {tally['false_positives']} | {tally['seconds']} |")
    return rows


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _per_class_rows(tally: dict) -> list[str]:
    return [f"| {c} | {v['objects']} | {_cell(v['recall'])} | {_cell(v['precision'])} |" for c, v in tally["per_class"].items()]


def _error_rows(tally: dict) -> list[str]:
    """What the misses and the false positives were (scripts/scoring.py names the kinds)."""
    misses, false = tally["misses"], tally["false_positive_kinds"]
    mixups = ", ".join(f"{m['true']} called {m['said']} {m['count']}×" for m in tally["mixups"]) or "none"
    return [
        f"What went wrong: a miss is *not found* (no detection with IoU ≥ {NEAR} of any class), a *box too loose* (its class, IoU "
        f"{NEAR}–{IOU}) or a *wrong class* (another class, IoU ≥ {IOU}); a false positive is *on nothing*, a *box too loose*, a *wrong "
        "class* or a *second box* on an object another detection found.", "",
        "| misses | " + " | ".join(misses) + " | false positives | " + " | ".join(false) + " |",
        "| --- |" + " --- |" * len(misses) + " --- |" + " --- |" * len(false),
        f"| {sum(misses.values())} | " + " | ".join(str(v) for v in misses.values()) + f" | {sum(false.values())} | "
        + " | ".join(str(v) for v in false.values()) + " |", "",
        f"Wrong classes, most often: {mixups}.", "",
    ]


def _size_rows(tally: dict, imgsz: int) -> list[str]:
    """Recall by how large the objects are: where the detector's input size loses them."""
    px = [round(bound * imgsz) for bound, _ in SIZE_BANDS[:-1]]
    inputs = [f"under {px[0]} px", *(f"{a}–{b} px" for a, b in zip(px, px[1:])), f"{px[-1]} px and over"]
    return [
        "Recall by object size (the side of a square of the box's area, as a share of the image's longer side, and in pixels of the "
        f"detector's {imgsz} px input):", "",
        "| size | at the detector's input | objects | recall |", "| --- | --- | --- | --- |",
        *(f"| {band} | {at} | {tally['recall_by_size'][band]['objects']} | {_cell(tally['recall_by_size'][band]['recall'])} |"
          for (_, band), at in zip(SIZE_BANDS, inputs)), "",
    ]


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    det, cls = report["detector"], report["classifier"]
    lines = [
        "# Evaluation: the held-out test split and the foreign set",
        "",
        f"Made by `python scripts/evaluate.py` ({report['seconds']:.0f} s). Test split: {cls['test_images']} images, data seed {report['data_seed']}, "
        "random streams never used for training.",
        "",
        "## Detector",
        "",
        "| runtime | mAP50 | mAP50-95 |",
        "| --- | --- | --- |",
        *(f"| {name} | {m['map50']:.3f} | {m['map50_95']:.3f} |" for name, m in det.items()),
        "",
        "mAP is Ultralytics' validator's, which compiles the OpenVINO models with OpenVINO's defaults: "
        + ("bfloat16 on this CPU (it has BF16 instructions), " if report.get("openvino_cpu_bf16") else "float32 on this CPU, ")
        + "where the service's runtime (and every table below) always runs float layers in float32.",
        "",
        "| class | AP50 | AP50-95 |",
        "| --- | --- | --- |",
        *(f"| {c} | {v['ap50']:.3f} | {v['ap50_95']:.3f} |" for c, v in det["pytorch"]["per_class"].items()),
        "",
        "## Scene classifier",
        "",
        "| input | accuracy |",
        "| --- | --- |",
        f"| image + ground-truth primitives | {cls['ground_truth_primitives']['accuracy']:.3f} |",
        f"| image + detected primitives (end to end, detector on {report['end_to_end_runtime']}) | {cls['end_to_end']['accuracy']:.3f} |",
        f"| image only (same backbone, no primitives) | {cls['image_only']['accuracy']:.3f} |",
        "",
        "Confusion matrices: [ground-truth primitives](confusion-ground-truth.png), [end to end](confusion-end-to-end.png), "
        "[image only](confusion-image-only.png).",
        "",
    ]
    default_mode = report["nms_default"]
    for name, title, about in (
        ("held_out", "Primitives on the held-out split", f"{cls['test_images']} images of the training generator's test streams."),
        ("foreign", "Primitives on the foreign set", f"{report['foreign_images']} images drawn with OpenCV by `scripts/foreign` (other shapes code, "
         "other scene layouts, ruled/grid/dotted paper, hand-drawn pens, hatched and dotted fills, arrows, scribbles and text, photos of paper); "
         "never used for training or choosing a checkpoint."),
    ):
        scores = report["primitives"][name]
        lines += [
            f"## {title}", "", about,
                f"A detection is right when its box has rotated IoU ≥ 0.5 with a true box of its class (detector on {report['end_to_end_runtime']}).", "",
            "Large images (longer side ≥ 1.5 × the detector's input) are also seen in tiles (`deployments/tiling.py`) unless the row says no tiles; "
            "seconds: the detector's time for the whole set on this machine, the cost of the tiles.", "",
            "| NMS | recall | precision | found with any class | false positives | seconds |", "| --- | --- | --- | --- | --- | --- |",
            *_primitive_rows(scores), "",
            f"Per class, {default_mode.replace('_', '-')} NMS (the default):", "",
            "| class | objects | recall | precision |", "| --- | --- | --- | --- |", *_per_class_rows(scores[default_mode]), "",
            *_error_rows(scores[default_mode]),
            *_size_rows(scores[default_mode], report["detector_input_size"]),
        ]
    lines += [
        "### The foreign set by drawing condition", "",
        "Each image counted once under every condition it was drawn with (default NMS): a value whose recall or precision stands below "
        "the others is a way of drawing the detector has not learnt. A guide to what data to add, to be checked again on a foreign set "
        "drawn from a new seed: the more the generator is shaped by this table, the less independent these images become.", "",
        "| condition | value | images | objects | recall | precision | found with any class | false positives |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(f"| {name} | {value} | {t['images']} | {t['objects']} | {t['recall']:.3f} | {t['precision']:.3f} | {t['recall_any_class']:.3f} | "
          f"{t['false_positives']} |" for name, values in report["foreign_by_condition"].items() for value, t in values.items()),
        "",
    ]
    scenes = report["foreign_scenes"]
    lines += [
        "## Scenes on the foreign set", "", f"End to end (detected primitives): accuracy **{scenes['accuracy']:.3f}**.", "",
        "| true \\ predicted | " + " | ".join(SCENES) + " |", "| --- |" + " --- |" * len(SCENES),
        *(f"| {SCENES[i]} | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(scenes["confusion"])), "",
    ]
    (out / "evaluation.md").write_text("\n".join(lines))
    for key, name in (("ground_truth_primitives", "ground-truth"), ("end_to_end", "end-to-end"), ("image_only", "image-only")):
        _confusion_png(cls[key]["confusion"], out / f"confusion-{name}.png", f"scene classifier: {name} ({cls[key]['accuracy']:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--weights", type=Path, default=Path("weights"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--foreign", type=int, default=FOREIGN_IMAGES, help="images of the foreign set")
    parser.add_argument("--runtime", default="openvino_int8", choices=RUNTIMES, help="detector runtime for the end-to-end scene accuracy (the service's)")
    args = parser.parse_args()
    started = time.perf_counter()
    ensure_test_split(args.data)
    detector_weights = args.weights / "primitive-detector.pt"
    detector = PrimitiveDetector(DetectorConfig(detector_weights, runtime=args.runtime, threads=os.cpu_count() or 1))
    report = {
        "data_seed": DEFAULT_SEED,
        "end_to_end_runtime": args.runtime,
        "detector_input_size": detector.imgsz,
        "detector": {runtime: evaluate_detector(detector_weights, args.data, runtime, detector.imgsz) for runtime in RUNTIMES},
        "classifier": evaluate_classifier(args.weights / "scene-classifier.pt", args.weights / "scene-classifier-image-only.pt", detector, args.data),
    }
    held_out, drawn = held_out_set(args.data), foreign_set(args.foreign)
    report["nms_default"] = "class_agnostic" if detector.class_agnostic_nms else "per_class"
    report["tiling"] = {"default": detector.tiling, "tile_confidence": detector.tile_confidence}
    report["foreign_images"] = len(drawn)
    (held_out_scores, _), (foreign_scores, foreign_found) = score_primitives(detector, held_out), score_primitives(detector, drawn)
    report["primitives"] = {"held_out": held_out_scores, "foreign": foreign_scores}
    report["foreign_by_condition"] = score_by_condition(drawn, foreign_found)
    report["foreign_scenes"] = scenes_end_to_end(args.weights / "scene-classifier.pt", drawn, foreign_found)
    report["openvino_cpu_bf16"] = _cpu_has_bf16()
    report["seconds"] = time.perf_counter() - started
    write_report(report, args.out)
    print(json.dumps({k: v for k, v in report["detector"].items()}, indent=1))
    print({k: report["classifier"][k]["accuracy"] for k in ("ground_truth_primitives", "end_to_end", "image_only")})
    for name, scores in report["primitives"].items():
        print(name, {mode: {k: tally[k] for k in ("recall", "precision", "recall_any_class")} for mode, tally in scores.items()})
    print("foreign scenes", report["foreign_scenes"]["accuracy"])


if __name__ == "__main__":
    main()
