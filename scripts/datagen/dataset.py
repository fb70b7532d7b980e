"""Writes a dataset: images and Ultralytics OBB labels per split, a scene label file, data.yaml.

Image i of a split is drawn from the random stream (seed, split, i) alone, so any image can be
made again on its own, and the test split's streams are never used for training.
"""

from __future__ import annotations

import csv
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from deployments.contract import Primitive
from deployments.vocabulary import PRIMITIVES, SCENES
from scripts.datagen.render import Sample, render, render_v2
from scripts.datagen.shapes import box_corners

SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}
# The dataset models 1.0 and 1.1 were trained on; its test split stays the held-out benchmark.
DEFAULT_SEED = 7
DEFAULT_COUNTS = {"train": 4000, "val": 400, "test": 700}
# Data version 2 (`render_v2`), which models 1.2 were fine-tuned on: a seed of its own.
V2_SEED = 8
RENDERERS = {1: render, 2: render_v2}
SCENE_FILE = "scenes.csv"


@dataclass(frozen=True)
class Item:
    split: str
    index: int
    seed: int
    version: int = 1  # of the generator: 1 or 2

    @property
    def stem(self) -> str:
        return f"{self.split}_{self.index:05d}"

    @property
    def scene(self) -> str:
        return SCENES[self.index % len(SCENES)]  # balanced classes


def sample(item: Item) -> Sample:
    return RENDERERS[item.version](np.random.default_rng([item.seed, SPLIT_STREAMS[item.split], item.index]), item.scene)


def obb_label_lines(sample: Sample) -> list[str]:
    """One line per object: class id and the 4 box corners normalised to the image."""
    w, h = sample.image.size
    lines = []
    for obj in sample.objects:
        corners = np.clip(box_corners(obj.box) / (w, h), 0, 1)
        lines.append(" ".join([str(PRIMITIVES.index(obj.shape.kind)), *(f"{v:.6f}" for v in corners.ravel())]))
    return lines


def _write(args: tuple[Path, Item]) -> tuple[str, str, str]:
    root, item = args
    s = sample(item)
    image_path = root / "images" / item.split / f"{item.stem}{s.extension}"
    image_path.write_bytes(s.encoded)
    (root / "labels" / item.split / f"{item.stem}.txt").write_text("\n".join(obb_label_lines(s)) + "\n")
    return item.split, image_path.name, s.scene


def write_dataset(root: Path, counts: dict[str, int], seed: int, workers: int = 2, version: int = 1) -> None:
    for split in counts:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    items = [(root, Item(split, i, seed, version)) for split, n in counts.items() for i in range(n)]
    with ProcessPoolExecutor(workers) as pool:
        rows = list(pool.map(_write, items, chunksize=16))
    with (root / SCENE_FILE).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "image", "scene"])
        writer.writerows(rows)
    data = {
        "path": str(root.resolve()),
        **{split: f"images/{split}" for split in counts},
        "names": dict(enumerate(PRIMITIVES)),
        "seed": seed,
        "data_version": version,
    }
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    scene: str
    primitives: list[Primitive]


def read_labels(path: Path, image_size: tuple[int, int]) -> list[Primitive]:
    """Ground-truth primitives of one image from its OBB label file, in the detector's form."""
    primitives = []
    for line in path.read_text().split("\n"):
        if not line.strip():
            continue
        class_id, *values = line.split()
        corners = np.array([float(v) for v in values]).reshape(4, 2) * image_size
        primitives.append(_primitive(int(class_id), corners, image_size))
    return primitives


def _primitive(class_id: int, corners: np.ndarray, image_size: tuple[int, int]) -> Primitive:
    # Corners go round the box: 0→1 is the width edge, 1→2 the height edge (pixels).
    width, height = image_size
    cx, cy = corners.mean(axis=0)
    along, across = corners[1] - corners[0], corners[2] - corners[1]
    return Primitive(
        class_id=class_id, class_name=PRIMITIVES[class_id], x=float(cx / width), y=float(cy / height),
        width=float(np.hypot(*along) / width), height=float(np.hypot(*across) / height),
        rotation=float(np.arctan2(along[1], along[0])), confidence=1.0,
    )


def read_split(root: Path, split: str) -> list[LabelledImage]:
    items = []
    with (root / SCENE_FILE).open() as f:
        for row in csv.DictReader(f):
            if row["split"] != split:
                continue
            image = root / "images" / split / row["image"]
            labels = root / "labels" / split / (image.stem + ".txt")
            with Image.open(image) as opened:
                size = opened.size
            items.append(LabelledImage(path=image, scene=row["scene"], primitives=read_labels(labels, size)))
    return items
