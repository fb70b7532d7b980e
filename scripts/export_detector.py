"""Export the detector checkpoint for the other runtimes, beside it: ONNX, OpenVINO IR, and
OpenVINO IR quantized to INT8 (NNCF, calibrated on the validation split: never the test split).

    python scripts/export_detector.py                       # weights/primitive-detector.pt

Every export takes one 1×3×S×S image (S from the checkpoint's JSON); `train_detector.py` calls this.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file from anywhere

from deployments import offline
from deployments.detector_backends import weights_for

CALIBRATION_SHARE = 0.75  # of the validation split (300 of 400 images by default)


def export(checkpoint: Path, data: Path) -> list[Path]:
    """Write the exports of `checkpoint` where the runtimes look for them; `data` is the
    dataset YAML whose validation images calibrate the INT8 model."""
    offline.configure_ultralytics()
    from ultralytics import YOLO

    imgsz = json.loads(checkpoint.with_suffix(".json").read_text())["imgsz"]
    model = YOLO(str(checkpoint), task="obb")
    written = []
    exports = (
        ("onnx", "onnx", {"simplify": True}),
        ("openvino", "openvino", {"half": False}),
        ("openvino_int8", "openvino", {"int8": True, "data": str(data), "fraction": CALIBRATION_SHARE}),
    )
    for runtime, fmt, options in exports:
        made = Path(model.export(format=fmt, imgsz=imgsz, dynamic=False, device="cpu", **options))
        target = weights_for(checkpoint, runtime)
        if made.resolve() != target.resolve():
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
            shutil.move(made, target)
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, nargs="?", default=Path("weights/primitive-detector.pt"))
    parser.add_argument("--data", type=Path, default=Path("data/synthetic/data.yaml"), help="its validation split calibrates INT8")
    args = parser.parse_args()
    for path in export(args.checkpoint, args.data):
        print(path)


if __name__ == "__main__":
    main()
