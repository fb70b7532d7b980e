"""Data version 2 and the foreign test set: deterministic, varied, and labelled where the shapes
are drawn; the scorer counts what a user would count as right."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from deployments.contract import Primitive
from deployments.vocabulary import PRIMITIVES, SCENES
from scripts.datagen.dataset import Item, obb_label_lines, sample
from scripts.datagen.shapes import Shape, box_corners, label_box
from scripts.datagen.styles import _perspective, _warped_box
from scripts.foreign.figures import Figure, triangle
from scripts.foreign.render import draw
from scripts.scoring import Tally, corners, iou


def test_version_2_is_deterministic_and_differs_from_version_1() -> None:
    for index in range(7):
        a, b = sample(Item("train", index, 8, version=2)), sample(Item("train", index, 8, version=2))
        assert a.encoded == b.encoded and obb_label_lines(a) == obb_label_lines(b)
    assert sample(Item("train", 1, 8, version=2)).encoded != sample(Item("train", 1, 8, version=1)).encoded


def test_version_2_covers_sizes_aspect_ratios_and_dark_paper() -> None:
    samples = [sample(Item("train", i, 8, version=2)) for i in range(16)]  # seeded: the same 16 each run
    sizes = [s.image.size for s in samples]
    assert min(min(size) for size in sizes) >= 200 and max(max(size) for size in sizes) <= 1600
    assert max(max(w / h, h / w) for w, h in sizes) > 2.0  # aspect ratios well past 2:1
    assert max(max(size) for size in sizes) > 900
    means = [np.asarray(s.image.convert("L")).mean() for s in samples]
    assert min(means) < 90 < 180 < max(means)  # dark boards and light paper
    assert all(s.objects for s in samples)


def test_perspective_moves_boxes_with_the_picture() -> None:
    quad = np.array([[0, 0], [400, 0], [400, 300], [0, 300]], float)
    identity = _perspective(quad, quad)
    assert np.allclose(identity, np.eye(3), atol=1e-9)
    box = (100.0, 80.0, 60.0, 30.0, 0.4)
    assert _warped_box(box, identity) == pytest.approx(box)
    shifted = _perspective(quad, quad + (10, 5))
    moved = _warped_box(box, shifted)
    assert moved[:2] == pytest.approx((110, 85)) and moved[2:] == pytest.approx(box[2:])


def test_foreign_set_is_deterministic_balanced_and_inside_its_images() -> None:
    drawn = [draw(i) for i in range(14)]
    assert [d.scene for d in drawn] == list(SCENES) * 2
    assert draw(3).encoded == drawn[3].encoded
    for image in drawn:
        width, height = Image.open(io.BytesIO(image.encoded)).size
        assert image.figures, f"image {image.index} has nothing to find"
        for figure in image.figures:
            assert figure.kind in PRIMITIVES
            box = figure.box()
            assert box[:, 0].min() > -0.05 * width and box[:, 0].max() < 1.05 * width
            assert box[:, 1].min() > -0.05 * height and box[:, 1].max() < 1.05 * height
    # Each says how it was drawn (the evaluation scores each condition apart), and says it right:
    # the file is what it names, and the set varies in every condition it reports on.
    for image in drawn:
        assert Image.open(io.BytesIO(image.encoded)).format == image.conditions["file"]
    varied = {name for name in drawn[0].conditions if len({d.conditions[name] for d in drawn}) > 1}
    assert varied >= {"paper", "outline", "stroke", "fill", "marks beside", "file", "photo: perspective"}


def test_foreign_triangle_box_stands_on_its_longest_edge() -> None:
    figure = triangle((100, 100), 80, 30, 0.3, 0.0)
    box = figure.box()
    sides = sorted((np.linalg.norm(box[1] - box[0]), np.linalg.norm(box[2] - box[1])))
    assert sides == pytest.approx([30, 80])


def _as_detection(kind: str, box: np.ndarray, width: int, height: int, confidence: float = 0.9) -> Primitive:
    centre = box.mean(axis=0)
    along, across = box[1] - box[0], box[2] - box[1]
    return Primitive(
        class_id=PRIMITIVES.index(kind), class_name=kind, x=centre[0] / width, y=centre[1] / height,
        width=float(np.hypot(*along)) / width, height=float(np.hypot(*across)) / height,
        rotation=math.atan2(along[1], along[0]), confidence=confidence,
    )


def test_scoring_counts_right_wrong_class_missed_and_doubled() -> None:
    width, height = 400, 300
    truths = [("square", box_corners(label_box(Shape("square", 100, 100, 50, 50, 0.3)))),
              ("circle", box_corners(label_box(Shape("circle", 300, 200, 60, 60))))]
    assert corners(_as_detection("square", truths[0][1], width, height), width, height) == pytest.approx(truths[0][1])
    assert iou(truths[0][1], truths[0][1]) == pytest.approx(1.0)
    perfect = Tally()
    perfect.add([_as_detection(kind, box, width, height) for kind, box in truths], truths, width, height)
    assert perfect.report()["recall"] == 1.0 and perfect.report()["precision"] == 1.0
    flawed = Tally()
    flawed.add([
        _as_detection("square", truths[0][1], width, height, 0.9),
        _as_detection("pentagon", truths[0][1], width, height, 0.5),  # a second box, another class
        _as_detection("ellipse", truths[1][1], width, height),  # found, wrong class
    ], truths, width, height)
    report = flawed.report()
    assert report["recall"] == 0.5 and report["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert report["recall_any_class"] == 1.0 and report["false_positives"] == 2
    assert report["per_class"]["circle"]["recall"] == 0.0 and report["per_class"]["star"]["recall"] is None
    assert report["misses"] == {"not found": 0, "box too loose": 0, "wrong class": 1}
    assert report["mixups"] == [{"true": "circle", "said": "ellipse", "count": 1}]
    assert report["false_positive_kinds"] == {"on nothing": 0, "box too loose": 0, "wrong class": 1, "second box": 1}


def test_scoring_tells_a_loose_box_from_a_miss_and_from_a_box_on_nothing() -> None:
    width, height = 400, 300
    truths = [("square", box_corners(label_box(Shape("square", 100, 100, 60, 60, 0.0)))),
              ("circle", box_corners(label_box(Shape("circle", 300, 200, 60, 60))))]
    loose = truths[0][1] * 1.0
    loose[1:3, 0] += 45  # the square's box stretched to the right: IoU 60/105, about 0.57; more:
    loose[1:3, 0] += 30  # 60/135, about 0.44, between NEAR and IOU
    tally = Tally()
    tally.add([_as_detection("square", loose, width, height),
               _as_detection("star", truths[0][1] + (200, -60), width, height)], truths, width, height)  # on empty paper
    report = tally.report()
    assert report["recall"] == 0.0
    assert report["misses"] == {"not found": 1, "box too loose": 1, "wrong class": 0}  # the circle; the square
    assert report["false_positive_kinds"] == {"on nothing": 1, "box too loose": 1, "wrong class": 0, "second box": 0}


def test_scoring_does_not_count_a_box_twice() -> None:
    truth = [("hexagon", Figure("hexagon", np.array([[0, 0], [40, 0], [40, 40], [0, 40]], float)).box() + 50)]
    tally = Tally()
    tally.add([_as_detection("hexagon", truth[0][1], 200, 200, c) for c in (0.9, 0.8)], truth, 200, 200)
    assert tally.report()["recall"] == 1.0 and tally.report()["precision"] == 0.5


def test_scoring_gives_recall_by_object_size() -> None:
    """A 10 px square on a 600 px image is under 1/30 of its side; a 100 px one is over 1/12."""
    width, height = 600, 400
    small = ("square", box_corners(label_box(Shape("square", 100, 100, 10, 10, 0.0))))
    large = ("square", box_corners(label_box(Shape("square", 400, 200, 100, 100, 0.0))))
    tally = Tally()
    tally.add([_as_detection("square", large[1], width, height)], [small, large], width, height)
    by_size = tally.report()["recall_by_size"]
    assert by_size["under 1/30"] == {"objects": 1, "recall": 0.0}
    assert by_size["1/12 and over"] == {"objects": 1, "recall": 1.0}
    assert by_size["1/30 to 1/20"] == {"objects": 0, "recall": None}
