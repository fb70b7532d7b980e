"""The synthetic data generator: deterministic, balanced, and its labels fit what it draws."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from deployments.vocabulary import PRIMITIVES, SCENES
from scripts.datagen.dataset import Item, obb_label_lines, read_split, sample, write_dataset
from scripts.datagen.scenes import random_primitive
from scripts.datagen.shapes import Shape, label_box, outline


def test_same_seed_same_image_and_labels() -> None:
    for index in range(7):
        a, b = sample(Item("train", index, 7)), sample(Item("train", index, 7))
        assert a.encoded == b.encoded
        assert obb_label_lines(a) == obb_label_lines(b)
    assert sample(Item("train", 3, 7)).encoded != sample(Item("train", 3, 8)).encoded
    # The test split draws from its own streams: never the training images.
    assert sample(Item("test", 3, 7)).encoded != sample(Item("train", 3, 7)).encoded


def test_written_dataset_is_valid_ultralytics_obb(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"train": 14, "test": 7}, seed=11, workers=1)
    train = read_split(tmp_path, "train")
    assert Counter(item.scene for item in train) == {scene: 2 for scene in SCENES}
    for label_file in (tmp_path / "labels" / "train").glob("*.txt"):
        lines = [line.split() for line in label_file.read_text().splitlines() if line]
        assert lines, f"{label_file.name} has no objects"
        for class_id, *coords in lines:
            assert 0 <= int(class_id) < len(PRIMITIVES)
            values = [float(v) for v in coords]
            assert len(values) == 8 and all(0 <= v <= 1 for v in values)
    sizes = {Image.open(p).size for p in (tmp_path / "images" / "train").iterdir()}
    assert len(sizes) > 3  # several sizes and aspect ratios
    assert "names" in (tmp_path / "data.yaml").read_text()


def _drawn_pixels(shape: Shape, size: int = 256) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in outline(shape)], fill=255)
    ys, xs = np.nonzero(np.asarray(canvas))
    return np.stack([xs + 0.5, ys + 0.5], axis=1)


@pytest.mark.parametrize("kind", PRIMITIVES)
def test_label_box_is_tight_around_the_drawn_shape(kind: str) -> None:
    rng = np.random.default_rng(PRIMITIVES.index(kind))
    shapes = []
    while len(shapes) < 12:
        shape = random_primitive(rng, rng.uniform(40, 120))
        if shape.kind == kind:
            shapes.append(shape.moved(128, 128))
    for shape in shapes:
        cx, cy, w, h, rotation = label_box(shape)
        pixels = _drawn_pixels(shape) - (cx, cy)
        c, s = math.cos(rotation), math.sin(rotation)
        local = pixels @ np.array([[c, -s], [s, c]])  # into the box's own frame
        slack = 2.0
        assert np.all(np.abs(local[:, 0]) <= w / 2 + slack) and np.all(np.abs(local[:, 1]) <= h / 2 + slack)
        # Tight: the shape reaches every side of its box.
        assert local[:, 0].max() >= w / 2 - slack and local[:, 0].min() <= -w / 2 + slack
        assert local[:, 1].max() >= h / 2 - slack and local[:, 1].min() <= -h / 2 + slack


def test_symmetric_shapes_get_the_same_box_when_turned_by_their_symmetry() -> None:
    square = Shape("square", 50, 50, 30, 30, rotation=0.2)
    assert label_box(square) == pytest.approx(label_box(Shape("square", 50, 50, 30, 30, rotation=0.2 + math.pi / 2)))
    star = Shape("star", 50, 50, 30, 30, rotation=0.1)
    assert label_box(star) == pytest.approx(label_box(Shape("star", 50, 50, 30, 30, rotation=0.1 + 2 * math.pi / 5)))
    assert label_box(Shape("circle", 50, 50, 30, 30, rotation=1.0))[4] == 0.0
