"""The tiled second look at large images: which tiles, which of their boxes are kept, and how
boxes found twice become one."""

from __future__ import annotations

import pytest
import torch

from deployments import tiling
from deployments.tiling import Tile


def _box(cx: float, cy: float, w: float, h: float, confidence: float = 0.9, cls: int = 0, angle: float = 0.0) -> list[float]:
    return [cx, cy, w, h, confidence, cls, angle]


def test_small_images_get_no_tiles() -> None:
    assert tiling.plan(700, 719, 480) == []
    assert tiling.plan(200, 1600, 480) != []  # the longer side decides, in either direction


@pytest.mark.parametrize(("height", "width"), [(1600, 1067), (720, 720), (1600, 533), (999, 1601)])
def test_tiles_cover_the_image_with_overlap_and_stay_inside(height: int, width: int) -> None:
    tiles = tiling.plan(height, width, 480)
    assert tiles
    covered = torch.zeros(height, width, dtype=torch.int32)
    for t in tiles:
        assert 0 <= t.x and t.x + t.width <= width and 0 <= t.y and t.y + t.height <= height
        # Each tile sees at least twice the detail of the whole-image pass, at most 1.2 × half the image.
        assert max(t.width, t.height) <= max(height, width) / tiling.ZOOM * (1 + tiling.OVERLAP) + 1
        covered[t.y : t.y + t.height, t.x : t.x + t.width] += 1
    assert covered.min() >= 1
    # Neighbours share at least OVERLAP of a tile's side, so a small figure is whole in one of them.
    for starts, side in ((sorted({t.x for t in tiles}), tiles[0].width), (sorted({t.y for t in tiles}), tiles[0].height)):
        assert all(b - a <= side * (1 - tiling.OVERLAP) + 1 for a, b in zip(starts, starts[1:]))


def test_a_tile_keeps_its_small_whole_boxes_moved_into_the_image() -> None:
    tile = Tile(x=400, y=300, width=600, height=600)  # an inner tile of a 1600×1200 image
    boxes = torch.tensor([
        _box(300, 300, 40, 40),  # small, well inside: kept
        _box(10, 300, 30, 30),  # touches the left edge, which is inside the image: cut, dropped
        _box(300, 595, 30, 30),  # touches the bottom edge, inside the image: dropped
        _box(300, 300, 400, 100),  # longer than 0.4 of the tile: left to the whole-image pass
    ])
    kept = tiling.keep_from_tile(boxes, tile, height=1200, width=1600, min_confidence=0.5)
    assert kept[:, :2].tolist() == [[700.0, 600.0]]
    corner = Tile(x=0, y=0, width=600, height=600)
    at_image_edge = tiling.keep_from_tile(torch.tensor([_box(10, 10, 20, 20)]), corner, height=1200, width=1600, min_confidence=0.5)
    assert len(at_image_edge) == 1  # the image's own edge cuts nothing


def test_a_rotated_box_is_judged_by_its_corners() -> None:
    tile = Tile(x=400, y=0, width=600, height=600)  # its bottom edge is inside a 1600×1200 image
    # 40 × 4 px centred 15 px above the edge: lying flat it is clear of it; turned a quarter it
    # stands 40 px tall and crosses it.
    flat, turned = _box(300, 585, 40, 4), _box(300, 585, 40, 4, angle=torch.pi / 2)
    kept = tiling.keep_from_tile(torch.tensor([flat, turned]), tile, height=1200, width=1600, min_confidence=0.5)
    assert kept[:, 6].tolist() == [0.0]


def test_boxes_found_twice_become_the_most_confident_one() -> None:
    whole = torch.tensor([_box(100, 100, 50, 50, confidence=0.6)])
    from_tiles = [torch.tensor([_box(101, 100, 50, 50, confidence=0.8), _box(500, 500, 30, 30, confidence=0.7)]),
                  torch.tensor([_box(500, 501, 30, 30, confidence=0.65)])]
    merged = tiling.merge(whole, from_tiles, iou=0.5)
    assert sorted(merged[:, 4].tolist()) == pytest.approx([0.7, 0.8])
    assert tiling.merge(whole, [torch.zeros((0, 7))], iou=0.5) is whole
