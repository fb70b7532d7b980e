"""Train the primitive detector (Ultralytics YOLO11n-OBB, built from its YAML, no download) on CPU.

    python scripts/train_detector.py --epochs 8 --fraction 0.5 --out runs/stage1          # from scratch
    python scripts/train_detector.py --init runs/stage1/primitive-detector.pt --epochs 8 --lr0 0.001

(the shipped weights' recipe, weights/primitive-detector.md). `--init` trains one of our own
checkpoints further; the JSON beside the result adds up the stages.

Writes the best checkpoint to weights/primitive-detector.pt, its ONNX and OpenVINO exports beside it, and
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

from deployments import offline
from deployments.vocabulary import PRIMITIVES
from scripts.export_detector import export

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


def _use_all_cores() -> None:
    """Ultralytics trains on CPU with cpu_count - 1 torch threads: one thread on a 2-core machine."""
    import os

    from ultralytics.utils import torch_utils

    torch_utils.NUM_THREADS = os.cpu_count() or 1


def train(data: Path, *, epochs: int, imgsz: int, batch: int, out: Path, runs: Path, fraction: float, workers: int, version: str,
          validate: bool = True, init: Path | None = None, lr0: float = 0.002) -> dict:
    offline.configure_ultralytics()
    _install_font()
    _use_all_cores()
    dataset = yaml.safe_load(data.read_text())
    from ultralytics import YOLO

    # A fresh network from the YAML, or one of our own checkpoints to train further (never a hub name).
    model = YOLO(str(init) if init else ARCHITECTURE, task="obb")
    previous = _previous_training(init)
    started = time.perf_counter()
    model.train(
        data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, device="cpu", workers=workers, amp=False,
        plots=False, project=str(runs.resolve()), name=NAME, exist_ok=True, seed=0, deterministic=True,
        fraction=fraction, optimizer="AdamW", lr0=lr0, cos_lr=True, warmup_epochs=0 if init else 1, close_mosaic=max(1, epochs // 5),
        patience=epochs, verbose=False, val=validate,
    )
    minutes = (time.perf_counter() - started) / 60
    best = Path(model.trainer.best)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{NAME}.pt"
    shutil.copy(best, weights)
    meta = {
        "name": NAME,
        "version": version,
        "architecture": ARCHITECTURE,
        "classes": list(PRIMITIVES),
        "imgsz": imgsz,
        "epochs": epochs + previous.get("epochs", 0),
        "train_fraction": fraction,
        "train_minutes": round(minutes + previous.get("train_minutes", 0), 1),
        "stages": previous.get("stages", []) + [{"init": init.name if init else ARCHITECTURE, "epochs": epochs, "fraction": fraction, "lr0": lr0,
            "minutes": round(minutes, 1)}],
        "data_seed": dataset.get("seed"),
        "train_images": round(fraction * len(list((data.parent / "labels" / "train").glob("*.txt")))),
    }
    (out / f"{NAME}.json").write_text(json.dumps(meta, indent=2) + "\n")
    export(weights, data)  # ONNX, OpenVINO and OpenVINO INT8 beside the checkpoint
    return meta


def _previous_training(init: Path | None) -> dict:
    """What the starting checkpoint had already been through (read from its JSON), so totals add up."""
    if init is None or not init.with_suffix(".json").exists():
        return {}
    meta = json.loads(init.with_suffix(".json").read_text())
    meta.setdefault("stages", [{"init": ARCHITECTURE, "epochs": meta.get("epochs", 0), "fraction": meta.get("train_fraction"),
        "minutes": meta.get("train_minutes")}])
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
    parser.add_argument("--init", type=Path, help="our own checkpoint to train further (default: a fresh network from the YAML)")
    parser.add_argument("--lr0", type=float, default=0.002, help="initial learning rate (AdamW, cosine decay)")
    parser.add_argument("--no-val", action="store_true", help="validate only after the last epoch (faster)")
    args = parser.parse_args()
    meta = train(
        args.data, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, out=args.out, runs=args.runs,
        fraction=args.fraction, workers=args.workers, version=args.version, validate=not args.no_val,
        init=args.init, lr0=args.lr0,
    )
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
