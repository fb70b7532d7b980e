"""Primitive shapes: their outline, and the oriented box a detector should learn for them.

A shape is a kind, a centre, a size and a rotation (radians, clockwise in image coordinates,
y down). Its label box must be a function of what can be seen, or the detector is taught
contradictions; so rotations are reduced by the shape's symmetry (a square turned 90° is the
same square, a circle has no rotation) and a triangle's box lies along its longest edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

# Turning a shape by this angle leaves it unchanged (0: any angle).
SYMMETRY = {
    "circle": 0.0,
    "ellipse": math.pi,
    "rectangle": math.pi,
    "square": math.pi / 2,
    "pentagon": 2 * math.pi / 5,
    "hexagon": math.pi / 3,
    "star": 2 * math.pi / 5,
}


@dataclass(frozen=True)
class Shape:
    kind: str
    cx: float
    cy: float
    width: float  # extent along the shape's own x axis
    height: float  # extent along its own y axis
    rotation: float = 0.0
    # Triangles only: apex position along the top edge, 0 (left) … 1 (right).
    apex: float = 0.5

    def moved(self, dx: float, dy: float) -> Shape:
        return replace(self, cx=self.cx + dx, cy=self.cy + dy)


def _local_outline(shape: Shape) -> np.ndarray:
    """Outline points in the shape's own frame (centre at 0, unrotated)."""
    w, h = shape.width / 2, shape.height / 2
    kind = shape.kind
    if kind in ("circle", "ellipse"):
        t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        return np.stack([w * np.cos(t), h * np.sin(t)], axis=1)
    if kind in ("rectangle", "square"):
        return np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
    if kind == "triangle":
        return np.array([[-w + 2 * w * shape.apex, -h], [w, h], [-w, h]])
    if kind in ("pentagon", "hexagon"):
        n = 5 if kind == "pentagon" else 6
        t = -math.pi / 2 + np.arange(n) * 2 * math.pi / n  # a vertex on top
        return np.stack([w * np.cos(t), h * np.sin(t)], axis=1)
    if kind == "star":
        t = -math.pi / 2 + np.arange(10) * math.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([w * radius * np.cos(t), h * radius * np.sin(t)], axis=1)
    raise ValueError(f"unknown shape {kind!r}")


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def outline(shape: Shape) -> np.ndarray:
    """Outline points in image coordinates."""
    return _rotate(_local_outline(shape), shape.rotation) + (shape.cx, shape.cy)


def _reduce(angle: float, period: float) -> float:
    """The angle modulo `period`, in [-period/2, period/2)."""
    return (angle + period / 2) % period - period / 2


def label_box(shape: Shape) -> tuple[float, float, float, float, float]:
    """The oriented box (cx, cy, w, h, rotation) to teach the detector for this shape."""
    if shape.kind == "triangle":
        return _triangle_box(outline(shape))
    if shape.kind == "circle":
        size = max(shape.width, shape.height)
        return shape.cx, shape.cy, size, size, 0.0
    pts = _local_outline(shape)
    # The tight box in the shape's own frame (regular polygons do not fill width × height).
    left, top = pts.min(axis=0)
    right, bottom = pts.max(axis=0)
    # The shape turned by the reduced angle is the same shape, so its box is taken in that frame.
    rotation = _reduce(shape.rotation, SYMMETRY[shape.kind])
    offset = _rotate(np.array([[(left + right) / 2, (top + bottom) / 2]]), rotation)[0]
    return shape.cx + offset[0], shape.cy + offset[1], right - left, bottom - top, rotation


def _triangle_box(corners: np.ndarray) -> tuple[float, float, float, float, float]:
    """Box along the longest edge: its length by the height of the opposite corner."""
    edges = [(corners[i], corners[(i + 1) % 3], corners[(i + 2) % 3]) for i in range(3)]
    a, b, opposite = max(edges, key=lambda e: np.linalg.norm(e[1] - e[0]))
    along = (b - a) / np.linalg.norm(b - a)
    normal = np.array([-along[1], along[0]])
    length = float(np.linalg.norm(b - a))
    height = float(np.dot(opposite - a, normal))
    centre = (a + b) / 2 + normal * height / 2
    return float(centre[0]), float(centre[1]), length, abs(height), _reduce(math.atan2(along[1], along[0]), math.pi)


def box_corners(box: tuple[float, float, float, float, float]) -> np.ndarray:
    """The 4 corners of an oriented box, in image coordinates."""
    cx, cy, w, h, rotation = box
    local = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    return _rotate(local, rotation) + (cx, cy)


def triangle_is_clear(shape: Shape) -> bool:
    """A triangle whose longest edge is clearly the longest, so its box is unambiguous."""
    corners = outline(shape)
    lengths = sorted(np.linalg.norm(corners[i] - corners[(i + 1) % 3]) for i in range(3))
    return lengths[2] >= 1.12 * lengths[1]
