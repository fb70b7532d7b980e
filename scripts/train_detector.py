"""Train the primitive detector (Ultralytics YOLO11n-OBB, built from its YAML, no download) on CPU.

    python scripts/train_detector.py --data data/synthetic/data.yaml --epochs 30 --imgsz 320

Writes the best checkpoint to weights/primitive-detector.pt, its ONNX export beside it, and
weights/primitive-detector.json (what the runtime needs to know about it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file from anywhere

from deployments import offline  # noqa: E402  (before ultralytics)
from deployments.vocabulary import PRIMITIVES  # noqa: E402

ARCHITECTURE = "yolo11n-obb.yaml"
NAME = "primitive-detector"


def _install_font() -> None:
    """Ultralytics looks for Arial.ttf when it validates, and would try to download it."""
    import os

    target = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf"
    system_font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not target.exists() and system_font.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(system_font, target)


def train(data: Path, *, epochs: int, imgsz: int, batch: int, out: Path, runs: Path, fraction: float, workers: int, version: str, validate: bool = True) -> dict:
    offline.configure_ultralytics()
    _install_font()
    dataset = yaml.safe_load(data.read_text())
    from ultralytics import YOLO

    model = YOLO(ARCHITECTURE, task="obb")
    started = time.perf_counter()
    model.train(
        data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, device="cpu", workers=workers, amp=False,
        plots=False, project=str(runs.resolve()), name=NAME, exist_ok=True, seed=0, deterministic=True,
        fraction=fraction, optimizer="AdamW", lr0=0.002, cos_lr=True, warmup_epochs=1, close_mosaic=max(1, epochs // 5),
        patience=epochs, verbose=False, val=validate,
    )
    minutes = (time.perf_counter() - started) / 60
    best = Path(model.trainer.best)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{NAME}.pt"
    shutil.copy(best, weights)
    trained = YOLO(str(weights), task="obb")
    onnx_path = Path(trained.export(format="onnx", imgsz=imgsz, dynamic=False, simplify=True, device="cpu"))
    shutil.move(onnx_path, out / f"{NAME}.onnx")
    meta = {
        "name": NAME,
        "version": version,
        "architecture": ARCHITECTURE,
        "classes": list(PRIMITIVES),
        "imgsz": imgsz,
        "epochs": epochs,
        "train_fraction": fraction,
        "train_minutes": round(minutes, 1),
        "data_seed": dataset.get("seed"),
        "train_images": round(fraction * len(list((data.parent / "labels" / "train").glob("*.txt")))),
    }
    (out / f"{NAME}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic/data.yaml"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the training split to use")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("weights"))
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--no-val", action="store_true", help="validate only after the last epoch (faster)")
    args = parser.parse_args()
    meta = train(
        args.data, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, out=args.out, runs=args.runs,
        fraction=args.fraction, workers=args.workers, version=args.version, validate=not args.no_val,
    )
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
