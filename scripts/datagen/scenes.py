"""Scenes: primitives composed into things (a house, a car, …) with varied layouts.

Each builder draws its scene in a frame of size `s` centred on the origin, picking optional
parts and proportions at random; `place` then scales, turns and moves it into the image.
Triangles are built with a clearly longest edge (see `shapes.triangle_is_clear`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scripts.datagen.shapes import Shape, triangle_is_clear

Rng = np.random.Generator


@dataclass(frozen=True)
class Part:
    shape: Shape
    role: str  # colour hint: "body", "wheel", "light", "leaf", "trunk", "detail", …


def _box(rng: Rng, cx: float, cy: float, w: float, h: float, role: str) -> Part:
    """A rectangle, or a square when its sides are close (classes must not overlap)."""
    if max(w, h) / min(w, h) < 1.4:
        side = math.sqrt(w * h)
        return Part(Shape("square", cx, cy, side, side), role)
    return Part(Shape("rectangle", cx, cy, w, h), role)


def _wide_triangle(rng: Rng, cx: float, base_y: float, base: float, height: float, role: str) -> Part:
    apex = rng.uniform(0.35, 0.65)
    return Part(Shape("triangle", cx, base_y - height / 2, base, height, apex=apex), role)


def house(rng: Rng, s: float) -> list[Part]:
    w = s * rng.uniform(0.55, 0.8)
    h = w * (1.0 if rng.random() < 0.4 else rng.uniform(0.55, 0.7))
    top = -s / 2 + s * 0.35
    parts = [_box(rng, 0, top + h / 2, w, h, "body")]
    parts.append(_wide_triangle(rng, rng.uniform(-0.05, 0.05) * w, top, w * rng.uniform(1.05, 1.3), w * rng.uniform(0.3, 0.45), "roof"))
    if rng.random() < 0.7:
        dw = w * rng.uniform(0.16, 0.24)
        dh = min(dw * rng.uniform(1.5, 2.2), h * 0.7)
        parts.append(Part(Shape("rectangle", rng.uniform(-0.25, 0.25) * w, top + h - dh / 2, dw, max(dh, dw * 1.45)), "detail"))
    for side in rng.permutation([-1, 1])[: rng.integers(0, 3)]:
        ws = w * rng.uniform(0.15, 0.2)
        parts.append(Part(Shape("square", side * w * 0.3, top + h * 0.3, ws, ws), "detail"))
    return parts


def car(rng: Rng, s: float) -> list[Part]:
    w = s * rng.uniform(0.8, 0.95)
    h = w / rng.uniform(2.4, 3.4)
    parts = [Part(Shape("rectangle", 0, 0, w, h), "body")]
    if rng.random() < 0.75:
        cw = w * rng.uniform(0.4, 0.6)
        ch = cw / rng.uniform(1.6, 2.4)
        parts.insert(0, Part(Shape("rectangle", rng.uniform(-0.15, 0.15) * w, -h / 2 - ch / 2 + 1, cw, ch), "body"))
    r = h * rng.uniform(0.38, 0.5)
    for side in (-1, 1):
        parts.append(Part(Shape("circle", side * w * rng.uniform(0.27, 0.35), h / 2, 2 * r, 2 * r), "wheel"))
    return parts


def snowman(rng: Rng, s: float) -> list[Part]:
    radii = [s * rng.uniform(0.2, 0.24)]
    for _ in range(rng.integers(1, 3)):
        radii.append(radii[-1] * rng.uniform(0.65, 0.8))
    y = s / 2 - radii[0]
    parts = []
    for i, r in enumerate(radii):
        if i:
            y -= radii[i - 1] + r * rng.uniform(0.7, 0.95)
        parts.append(Part(Shape("circle", rng.uniform(-0.03, 0.03) * s, y, 2 * r, 2 * r), "snow"))
    if rng.random() < 0.5:
        hw = radii[-1] * rng.uniform(1.1, 1.5)
        hh = hw / rng.uniform(1.5, 2.2)
        parts.append(Part(Shape("rectangle", parts[-1].shape.cx, y - radii[-1] - hh / 2 + 2, hw, hh), "detail"))
    return parts


def traffic_light(rng: Rng, s: float) -> list[Part]:
    h = s * rng.uniform(0.8, 0.95)
    w = h / rng.uniform(2.4, 3.2)
    parts = [Part(Shape("rectangle", 0, 0, w, h), "housing")]
    r = w * rng.uniform(0.28, 0.36)
    for i in (-1, 0, 1):
        parts.append(Part(Shape("circle", 0, i * h * 0.3, 2 * r, 2 * r), f"light{i + 1}"))
    return parts


def tree(rng: Rng, s: float) -> list[Part]:
    tw = s * rng.uniform(0.12, 0.17)
    th = tw * rng.uniform(1.6, 2.6)
    parts = [Part(Shape("rectangle", 0, s / 2 - th / 2, tw, th), "trunk")]
    canopy_bottom = s / 2 - th + 2
    style = rng.choice(["triangles", "circle", "ellipse"])
    if style == "triangles":
        layers = int(rng.integers(1, 4))
        base = s * rng.uniform(0.65, 0.85)
        y = canopy_bottom
        for _ in range(layers):
            height = base * rng.uniform(0.35, 0.5)
            parts.append(_wide_triangle(rng, 0, y, base, height, "leaf"))
            y -= height * 0.55
            base *= rng.uniform(0.72, 0.85)
    else:
        d = s * rng.uniform(0.55, 0.7)
        w, h = (d, d) if style == "circle" else ((d, d * rng.uniform(1.45, 1.7)) if rng.random() < 0.5 else (d * 1.5, d))
        parts.append(Part(Shape(style, 0, canopy_bottom - h / 2 + th * 0.2, w, h), "leaf"))
    return parts


def face(rng: Rng, s: float) -> list[Part]:
    d = s * rng.uniform(0.8, 0.95)
    head = Shape("circle", 0, 0, d, d) if rng.random() < 0.5 else Shape("ellipse", 0, 0, d / rng.uniform(1.4, 1.55), d)
    parts = [Part(head, "skin")]
    eye_kind = rng.choice(["circle", "ellipse"])
    ew = head.width * rng.uniform(0.16, 0.22)
    eh = ew if eye_kind == "circle" else ew * rng.uniform(1.45, 1.8)
    for side in (-1, 1):
        parts.append(Part(Shape(eye_kind, side * head.width * 0.22, -head.height * 0.15, ew, eh), "detail"))
    mw = head.width * rng.uniform(0.35, 0.5)
    mouth = "ellipse" if rng.random() < 0.5 else "rectangle"
    parts.append(Part(Shape(mouth, 0, head.height * 0.25, mw, mw / rng.uniform(2.0, 3.0)), "detail"))
    if rng.random() < 0.4:
        nose = Shape("triangle", 0, head.height * 0.05, head.width * 0.16, head.width * 0.08, apex=0.5)
        if triangle_is_clear(nose):
            parts.append(Part(nose, "detail"))
    return parts


BUILDERS: dict[str, Callable[[Rng, float], list[Part]]] = {
    "house": house,
    "car": car,
    "snowman": snowman,
    "traffic_light": traffic_light,
    "tree": tree,
    "face": face,
}


def random_primitive(rng: Rng, size: float) -> Shape:
    """One primitive of any class, for clutter and distractors."""
    kind = str(rng.choice(["circle", "ellipse", "triangle", "rectangle", "square", "pentagon", "hexagon", "star"]))
    rotation = rng.uniform(-math.pi, math.pi)
    if kind == "ellipse" or kind == "rectangle":
        return Shape(kind, 0, 0, size, size / rng.uniform(1.45, 3.0), rotation)
    if kind == "triangle":
        while True:
            shape = Shape(kind, 0, 0, size, size * rng.uniform(0.3, 0.75), rotation, apex=rng.uniform(0, 1))
            if triangle_is_clear(shape):
                return shape
    return Shape(kind, 0, 0, size, size, rotation)


def place(parts: list[Part], *, scale: float, rotation: float, dx: float, dy: float, mirror: bool) -> list[Part]:
    """Scale, mirror, turn and move a scene built around the origin."""
    c, s = math.cos(rotation), math.sin(rotation)
    placed = []
    for part in parts:
        sh = part.shape
        x, y = sh.cx * scale, sh.cy * scale
        own_rotation, apex = sh.rotation, sh.apex
        if mirror:
            x, own_rotation, apex = -x, -own_rotation, 1 - apex
        shape = Shape(
            sh.kind, x * c - y * s + dx, x * s + y * c + dy, sh.width * scale, sh.height * scale,
            own_rotation + rotation, apex,
        )
        placed.append(Part(shape, part.role))
    return placed
