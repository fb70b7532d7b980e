"""Train the scene classifier (timm backbone, pretrained=False, fused with the primitives) on CPU,
and an image-only twin as the baseline that shows what the primitives add.

    python scripts/train_classifier.py --data data/synthetic --epochs 20

It learns from the primitives the shipped detector finds in each training image (half the time)
and from ground-truth primitives disturbed the way a detector errs (jitter, misses, extra boxes,
lower confidences): at run time it only ever sees detected primitives.
Writes weights/scene-classifier.{pt,json} and weights/scene-classifier-image-only.{pt,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file from anywhere

import torch
from PIL import Image
from torch import nn

from deployments.contract import Primitive
from deployments.detector_runtime import DetectorConfig, PrimitiveDetector
from deployments.scene_model import SceneNet, encode_primitives, image_tensor
from deployments.vocabulary import PRIMITIVES, SCENES
from scripts.datagen.dataset import LabelledImage, read_split

NAME = "scene-classifier"
DETECTED_SHARE = 0.5  # of training samples that use the detector's primitives rather than disturbed truth


def disturb(primitives: list[Primitive], rng: random.Random) -> list[Primitive]:
    """Primitives as an imperfect detector might report them."""
    out = []
    for p in primitives:
        if rng.random() < 0.08:
            continue  # missed
        def jitter(v: float) -> float:
            return v * (1 + rng.gauss(0, 0.04))

        out.append(p.model_copy(update={
            "x": p.x + rng.gauss(0, 0.01), "y": p.y + rng.gauss(0, 0.01), "width": jitter(p.width),
            "height": jitter(p.height), "rotation": p.rotation + rng.gauss(0, 0.05), "confidence": rng.uniform(0.3, 1.0),
        }))
    if rng.random() < 0.15:  # a spurious box
        cls = rng.randrange(len(PRIMITIVES))
        size = rng.uniform(0.05, 0.2)
        out.append(Primitive(class_id=cls, class_name=PRIMITIVES[cls], x=rng.random(), y=rng.random(), width=size, height=size, rotation=0.0,
            confidence=rng.uniform(0.25, 0.6)))
    return out


def mirrored(primitives: list[Primitive]) -> list[Primitive]:
    return [p.model_copy(update={"x": 1 - p.x, "rotation": -p.rotation}) for p in primitives]


def load(items: list[LabelledImage], imgsz: int) -> tuple[torch.Tensor, list[tuple[int, int]], torch.Tensor]:
    images, sizes = [], []
    for item in items:
        with Image.open(item.path) as opened:
            rgb = opened.convert("RGB")
        images.append(image_tensor(rgb, imgsz))
        sizes.append(rgb.size)
    labels = torch.tensor([SCENES.index(item.scene) for item in items])
    return torch.stack(images), sizes, labels


def batches(n: int, size: int, rng: random.Random):
    order = list(range(n))
    rng.shuffle(order)
    for start in range(0, n, size):
        yield order[start : start + size]


def detect_all(items: list[LabelledImage], weights: Path, runtime: str) -> list[list[Primitive]]:
    """What the detector finds in every training image (once, before training)."""
    detector = PrimitiveDetector(DetectorConfig(weights, runtime=runtime, threads=os.cpu_count() or 1))
    found: list[list[Primitive]] = []
    started = time.perf_counter()
    for start in range(0, len(items), 16):
        found += detector.predict([item.path.read_bytes() for item in items[start : start + 16]])
    print(f"detected primitives in {len(items)} training images in {time.perf_counter() - started:.0f} s ({detector.version}, {runtime})", flush=True)
    return found


def train_one(items, images, sizes, labels, *, backbone: str, use_primitives: bool, epochs: int, batch: int, seed: int,
              detected: list[list[Primitive]] | None = None) -> SceneNet:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    net = SceneNet(backbone, len(SCENES), use_primitives=use_primitives)
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * ((len(items) + batch - 1) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    net.train()
    for epoch in range(epochs):
        total, correct, started = 0.0, 0, time.perf_counter()
        for index in batches(len(items), batch, rng):
            flip = [rng.random() < 0.5 for _ in index]
            x = images[index]
            x = torch.stack([img.flip(-1) if f else img for img, f in zip(x, flip)])
            objects = mask = None
            if use_primitives:
                encoded = []
                for i, f in zip(index, flip):
                    use_detected = detected is not None and rng.random() < DETECTED_SHARE
                    prims = detected[i] if use_detected else disturb(items[i].primitives, rng)
                    encoded.append(encode_primitives(mirrored(prims) if f else prims, sizes[i]))
                objects = torch.stack([o for o, _ in encoded])
                mask = torch.stack([m for _, m in encoded])
            logits = net(x, objects, mask)
            loss = loss_fn(logits, labels[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(index)
            correct += (logits.argmax(1) == labels[index]).sum().item()
        print(f"{'fused' if use_primitives else 'image-only'} epoch {epoch + 1}/{epochs}: loss {total / len(items):.3f}, "
              f"train accuracy {correct / len(items):.3f}, {time.perf_counter() - started:.0f} s", flush=True)
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--backbone", default="test_resnet")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("weights"))
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--detector", type=Path, default=Path("weights/primitive-detector.pt"), help="detector whose primitives to learn from")
    parser.add_argument("--detector-runtime", default="openvino_int8", help="the runtime the service uses")
    parser.add_argument("--no-detected", action="store_true", help="learn from disturbed ground truth only")
    parser.add_argument("--skip-baseline", action="store_true", help="do not train the image-only twin")
    args = parser.parse_args()

    items = read_split(args.data, "train")
    if args.limit:
        items = items[: args.limit]
    started = time.perf_counter()
    images, sizes, labels = load(items, args.imgsz)
    detected = None if args.no_detected else detect_all(items, args.detector, args.detector_runtime)
    detector_version = None if detected is None else json.loads(args.detector.with_suffix(".json").read_text())["version"]
    args.out.mkdir(parents=True, exist_ok=True)
    variants = [(NAME, True)] + ([] if args.skip_baseline else [(f"{NAME}-image-only", False)])
    for name, use_primitives in variants:
        t0 = time.perf_counter()
        net = train_one(items, images, sizes, labels, backbone=args.backbone, use_primitives=use_primitives,
                        epochs=args.epochs, batch=args.batch, seed=args.seed, detected=detected)
        torch.save(net.state_dict(), args.out / f"{name}.pt")
        meta = {
            "name": name, "version": args.version, "backbone": args.backbone, "uses_primitives": use_primitives,
            "classes": list(SCENES), "imgsz": args.imgsz, "epochs": args.epochs, "train_images": len(items),
            "seed": args.seed, "train_minutes": round((time.perf_counter() - t0) / 60, 1),
            **({"detected_primitives": {"detector_version": detector_version, "runtime": args.detector_runtime, "share": DETECTED_SHARE}}
               if use_primitives and detected is not None else {}),
        }
        (args.out / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(json.dumps(meta))
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
