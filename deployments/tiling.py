"""A second look at large images: overlapping tiles seen at twice the scale of the whole-image
pass, for the small figures a fixed input size shrinks below what the detector can see.

A 1,600 px drawing goes into a 480 px input at 0.3 times its size, so a 50 px figure arrives
at 15 px. Tiles of about half the image's longer side (plus overlap) bring it to 30 px. Only
the tiles' small boxes are kept, and none that touches a tile's inner edge (a figure cut by the
edge is whole in the pass over the whole image or in the neighbouring tile); boxes found twice
are merged by rotated NMS. docs/evaluation.md measures the effect and the cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Tile an image whose longer side is at least this many times the detector's input size.
MIN_LONG_SIDE = 1.5
ZOOM = 2.0  # a tile's scale over the whole-image pass's
OVERLAP = 0.2  # a share of a tile's side
# A tile's box longer than this share of the tile's side is left to the whole-image pass.
MAX_BOX_SHARE = 0.4
EDGE_PX = 3  # within this many pixels of a tile's inner edge, a box is taken as cut


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    width: int
    height: int


def plan(height: int, width: int, input_size: int) -> list[Tile]:
    """The tiles of an image of this size; none when it is small enough for one pass."""
    longer = max(height, width)
    if longer < MIN_LONG_SIDE * input_size:
        return []
    side = int(longer / ZOOM * (1 + OVERLAP))
    xs, tile_width = _starts(width, side)
    ys, tile_height = _starts(height, side)
    return [Tile(x, y, tile_width, tile_height) for y in ys for x in xs]


def _starts(length: int, side: int) -> tuple[list[int], int]:
    """Evenly spaced starts of tiles `side` long that cover `length` with at least OVERLAP."""
    if length <= side:
        return [0], length
    count = math.ceil((length - side) / (side * (1 - OVERLAP))) + 1
    return [round(i * (length - side) / (count - 1)) for i in range(count)], side


def keep_from_tile(boxes: torch.Tensor, tile: Tile, height: int, width: int, *, min_confidence: float) -> torch.Tensor:
    """A tile's boxes (x, y, w, h, confidence, class, angle in the tile's pixels) that are small,
    not cut by an inner edge and at least `min_confidence`, moved into the image's pixels."""
    from ultralytics.utils.ops import xywhr2xyxyxyxy

    if not len(boxes):
        return boxes
    corners = xywhr2xyxyxyxy(torch.cat([boxes[:, :4], boxes[:, 6:7]], 1))  # (n, 4, 2)
    low, high = corners.amin(1), corners.amax(1)
    cut = torch.zeros(len(boxes), dtype=torch.bool)
    if tile.x > 0:
        cut |= low[:, 0] < EDGE_PX
    if tile.y > 0:
        cut |= low[:, 1] < EDGE_PX
    if tile.x + tile.width < width:
        cut |= high[:, 0] > tile.width - EDGE_PX
    if tile.y + tile.height < height:
        cut |= high[:, 1] > tile.height - EDGE_PX
    small = (high - low).amax(1) <= MAX_BOX_SHARE * max(tile.width, tile.height)
    kept = boxes[small & ~cut & (boxes[:, 4] >= min_confidence)].clone()
    kept[:, 0] += tile.x
    kept[:, 1] += tile.y
    return kept


def merge(whole: torch.Tensor, tiled: list[torch.Tensor], iou: float) -> torch.Tensor:
    """The whole-image pass's boxes and the tiles' as one set: of boxes that overlap by more than
    `iou` (probabilistic IoU of oriented boxes, as the detector's own NMS), the most confident."""
    from ultralytics.utils.metrics import batch_probiou
    from ultralytics.utils.nms import TorchNMS

    boxes = torch.cat([whole, *tiled])
    if len(boxes) == len(whole):
        return whole
    keep = TorchNMS.fast_nms(torch.cat([boxes[:, :4], boxes[:, 6:7]], 1), boxes[:, 4], iou, iou_func=batch_probiou)
    return boxes[keep]
