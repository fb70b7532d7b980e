"""Figures for the foreign set: a class name and an outline polygon, with the oriented box the
API promises for it (the contract in docs/design.md, not the training generator's code).

The box of a figure is what can be seen of it: the smallest rectangle around a polygon, a
square around a circle, and for a triangle the rectangle standing on its longest edge (every
edge of a triangle gives a rectangle of the same area, so area alone cannot choose).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

Rng = np.random.Generator


@dataclass(frozen=True)
class Figure:
    kind: str
    outline: np.ndarray  # N×2 float, image pixels, in drawing order

    def box(self) -> np.ndarray:
        """The 4 corners of the figure's oriented box."""
        if self.kind == "triangle":
            return _longest_edge_box(self.outline)
        if self.kind == "circle":
            (cx, cy), radius = cv2.minEnclosingCircle(self.outline.astype(np.float32))
            return np.array([[cx - radius, cy - radius], [cx + radius, cy - radius], [cx + radius, cy + radius], [cx - radius, cy + radius]])
        return cv2.boxPoints(cv2.minAreaRect(self.outline.astype(np.float32))).astype(np.float64)

    def extent(self) -> tuple[float, float, float, float]:
        return (*self.outline.min(axis=0), *self.outline.max(axis=0))

    def mapped(self, transform: np.ndarray) -> Figure:
        """The figure under a 3×3 perspective transform."""
        points = cv2.perspectiveTransform(self.outline.reshape(-1, 1, 2).astype(np.float64), transform).reshape(-1, 2)
        return Figure(self.kind, points)


def _longest_edge_box(corners: np.ndarray) -> np.ndarray:
    edges = [(corners[i], corners[(i + 1) % 3], corners[(i + 2) % 3]) for i in range(3)]
    a, b, apex = max(edges, key=lambda e: float(np.linalg.norm(e[1] - e[0])))
    along = (b - a) / np.linalg.norm(b - a)
    normal = np.array([-along[1], along[0]])
    height = float(np.dot(apex - a, normal))
    return np.array([a, b, b + normal * height, a + normal * height])


def _turned(points: np.ndarray, angle: float, centre: tuple[float, float]) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]]) + centre


def regular(kind: str, centre: tuple[float, float], radius: float, angle: float) -> Figure:
    sides = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}[kind]
    t = np.arange(sides) * 2 * math.pi / sides
    return Figure(kind, _turned(np.stack([radius * np.cos(t), radius * np.sin(t)], 1), angle, centre))


def oval(kind: str, centre: tuple[float, float], rx: float, ry: float, angle: float) -> Figure:
    t = np.linspace(0, 2 * math.pi, 120, endpoint=False)
    return Figure(kind, _turned(np.stack([rx * np.cos(t), ry * np.sin(t)], 1), angle, centre))


def oblong(centre: tuple[float, float], width: float, height: float, angle: float) -> Figure:
    """A rectangle, or a square when its sides are within 1.2 of each other."""
    w, h = width / 2, height / 2
    kind = "square" if max(width, height) / min(width, height) < 1.2 else "rectangle"
    if kind == "square":
        w = h = math.sqrt(w * h)
    return Figure(kind, _turned(np.array([[-w, -h], [w, -h], [w, h], [-w, h]]), angle, centre))


def star(centre: tuple[float, float], radius: float, angle: float, inner: float = 0.42) -> Figure:
    t = np.arange(10) * math.pi / 5
    r = np.where(np.arange(10) % 2 == 0, radius, radius * inner)
    return Figure("star", _turned(np.stack([r * np.cos(t), r * np.sin(t)], 1), angle, centre))


def triangle(centre: tuple[float, float], base: float, height: float, apex: float, angle: float) -> Figure:
    """A triangle standing on `base`, its apex `apex` (0…1) along it; `base` is kept clearly its
    longest edge, so its box is unambiguous."""
    height, apex = min(height, base * 0.45), min(max(apex, 0.25), 0.75)  # other edges ≤ 0.88 × base
    points = np.array([[-base / 2, height / 2], [base / 2, height / 2], [-base / 2 + apex * base, -height / 2]])
    return Figure("triangle", _turned(points, angle, centre))


def any_figure(rng: Rng, centre: tuple[float, float], size: float) -> Figure:
    """One figure of any class, about `size` across."""
    kind = str(rng.choice(["circle", "ellipse", "triangle", "rectangle", "square", "pentagon", "hexagon", "star"]))
    angle = rng.uniform(-math.pi, math.pi)
    if kind == "circle":
        return oval("circle", centre, size / 2, size / 2, 0.0)
    if kind == "ellipse":
        return oval("ellipse", centre, size / 2, size / 2 / rng.uniform(1.5, 2.8), angle)
    if kind == "rectangle":
        return oblong(centre, size, size / rng.uniform(1.5, 3.0), angle)
    if kind == "square":
        return oblong(centre, size, size, angle)
    if kind == "triangle":
        return triangle(centre, size, size * rng.uniform(0.3, 0.45), rng.uniform(0.25, 0.75), angle)
    if kind == "star":
        return star(centre, size / 2, angle)
    return regular(kind, centre, size / 2, angle)
