"""Scene compositions of the foreign set, laid out afresh (not the generator's layouts): each
builder returns the figures of one scene of size about `s`, centred on `(cx, cy)`."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from scripts.foreign.figures import Figure, any_figure, oblong, oval, triangle

Rng = np.random.Generator
Builder = Callable[[Rng, float, float, float], list[Figure]]


def house(rng: Rng, cx: float, cy: float, s: float) -> list[Figure]:
    w = s * rng.uniform(0.5, 0.75)
    h = w * rng.uniform(0.6, 1.0)
    top = cy - s * 0.1
    figures = [oblong((cx, top + h / 2), w, h, 0.0)]
    roof_h = w * rng.uniform(0.28, 0.42)
    figures.append(triangle((cx, top - roof_h / 2), w * rng.uniform(1.0, 1.25), roof_h, rng.uniform(0.4, 0.6), 0.0))
    if rng.random() < 0.4:  # a chimney beside the roof's slope
        figures.append(oblong((cx + w * 0.3, top - roof_h * 0.55), w * 0.1, roof_h * 0.6, 0.0))
    door_w = w * rng.uniform(0.15, 0.22)
    figures.append(oblong((cx + rng.uniform(-0.2, 0.2) * w, top + h - door_w, ), door_w, door_w * 2, 0.0))
    rows = 2 if h > w * 0.8 and rng.random() < 0.5 else 1
    for row in range(rows):
        for side in (-1, 1):
            if rng.random() < 0.8:
                side_w = w * rng.uniform(0.13, 0.17)
                figures.append(oblong((cx + side * w * 0.32, top + h * (0.25 + 0.3 * row)), side_w, side_w, 0.0))
    return figures


def car(rng: Rng, cx: float, cy: float, s: float) -> list[Figure]:
    w = s * rng.uniform(0.8, 0.95)
    h = w / rng.uniform(2.6, 3.6)
    figures = [oblong((cx, cy), w, h, 0.0), oblong((cx + rng.uniform(-0.1, 0.1) * w, cy - h * 0.95), w * rng.uniform(0.45, 0.6), h * 0.9, 0.0)]
    radius = h * rng.uniform(0.35, 0.48)
    for side in (-1, 1):
        figures.append(oval("circle", (cx + side * w * rng.uniform(0.26, 0.34), cy + h / 2), radius, radius, 0.0))
    if rng.random() < 0.4:  # a headlight
        figures.append(oval("circle", (cx + w * 0.42, cy - h * 0.15), h * 0.13, h * 0.13, 0.0))
    return figures


def snowman(rng: Rng, cx: float, cy: float, s: float) -> list[Figure]:
    radii = [s * rng.uniform(0.19, 0.23)]
    radii += [radii[-1] * rng.uniform(0.62, 0.78) for _ in range(int(rng.integers(1, 3)))]
    if len(radii) == 2:
        radii[1] = max(radii[1], radii[0] * 0.7)
    y = cy + s / 2 - radii[0]
    figures = []
    for i, r in enumerate(radii):
        if i:
            y -= radii[i - 1] + r * rng.uniform(0.75, 0.95)
        figures.append(oval("circle", (cx, y), r, r, 0.0))
    head = radii[-1]
    if rng.random() < 0.6:  # a top hat: brim and crown
        figures.append(oblong((cx, y - head * 0.95), head * 1.6, head * 0.28, 0.0))
        figures.append(oblong((cx, y - head * 1.45), head * 1.0, head * 0.8, 0.0))
    if rng.random() < 0.5:  # buttons
        for k in range(2):
            figures.append(oval("circle", (cx, cy + s / 2 - radii[0] * (1.5 + 0.5 * k)), radii[0] * 0.12, radii[0] * 0.12, 0.0))
    return figures


def traffic_light(rng: Rng, cx: float, cy: float, s: float) -> list[Figure]:
    h = s * rng.uniform(0.6, 0.75)
    w = h / rng.uniform(2.3, 3.0)
    top = cy - s / 2
    figures = [oblong((cx, top + h / 2), w, h, 0.0)]
    r = w * rng.uniform(0.26, 0.34)
    for k in (-1, 0, 1):
        figures.append(oval("circle", (cx, top + h / 2 + k * h * 0.31), r, r, 0.0))
    figures.append(oblong((cx, top + h + (s - h) / 2), w * 0.2, s - h, 0.0))  # the pole
    return figures


def tree(rng: Rng, cx: float, cy: float, s: float) -> list[Figure]:
    trunk_w = s * rng.uniform(0.1, 0.16)
    trunk_h = s * rng.uniform(0.25, 0.4)
    base = cy + s / 2
    figures = [oblong((cx, base - trunk_h / 2), trunk_w, trunk_h, 0.0)]
    top = base - trunk_h
    style = rng.choice(["round", "oval", "fir"])
    if style == "round":
        r = s * rng.uniform(0.28, 0.34)
        figures.append(oval("circle", (cx, top - r * 0.8), r, r, 0.0))
    elif style == "oval":
        rx = s * rng.uniform(0.2, 0.26)
        figures.append(oval("ellipse", (cx, top - rx * 1.3), rx, rx * rng.uniform(1.5, 1.8), 0.0))
    else:
        width, y = s * rng.uniform(0.6, 0.8), top
        for _ in range(int(rng.integers(2, 4))):
            height = width * rng.uniform(0.32, 0.42)
            figures.append(triangle((cx, y - height / 2), width, height, 0.5, 0.0))
            y -= height * 0.6
            width *= 0.78
    return figures


def face(rng: Rng, cx: float, cy: float, s: float) -> list[Figure]:
    r = s * rng.uniform(0.38, 0.45)
    long = rng.random() < 0.5
    head = oval("ellipse", (cx, cy), r / rng.uniform(1.5, 1.6), r, 0.0) if long else oval("circle", (cx, cy), r, r, 0.0)
    rx = r / 1.55 if long else r
    eye = rx * rng.uniform(0.12, 0.17)
    figures = [head]
    for side in (-1, 1):
        if rng.random() < 0.5:
            figures.append(oval("circle", (cx + side * rx * 0.4, cy - r * 0.2), eye, eye, 0.0))
        else:
            figures.append(oval("ellipse", (cx + side * rx * 0.4, cy - r * 0.2), eye * 0.6, eye * 1.1, 0.0))
    mouth_w = rx * rng.uniform(0.7, 0.95)
    if rng.random() < 0.5:
        figures.append(oval("ellipse", (cx, cy + r * 0.45), mouth_w / 2, mouth_w / 2 / rng.uniform(2.0, 3.0), 0.0))
    else:
        figures.append(oblong((cx, cy + r * 0.45), mouth_w, mouth_w / rng.uniform(2.5, 4.0), 0.0))
    if rng.random() < 0.5:  # a nose
        figures.append(triangle((cx, cy + r * 0.1), rx * 0.3, rx * 0.12, 0.5, math.pi))
    return figures


def clutter(rng: Rng, cx: float, cy: float, s: float) -> list[Figure]:
    """Unrelated figures spread over the area, not touching each other."""
    figures: list[Figure] = []
    for _ in range(60):
        if len(figures) >= int(rng.integers(2, 7)):
            break
        size = s * rng.uniform(0.12, 0.35)
        candidate = any_figure(rng, (cx + rng.uniform(-0.5, 0.5) * s, cy + rng.uniform(-0.5, 0.5) * s), size)
        if all(_apart(candidate, other) for other in figures):
            figures.append(candidate)
    return figures


def _apart(a: Figure, b: Figure) -> bool:
    ax0, ay0, ax1, ay1 = a.extent()
    bx0, by0, bx1, by1 = b.extent()
    return ax1 < bx0 or bx1 < ax0 or ay1 < by0 or by1 < ay0


BUILDERS: dict[str, Builder] = {
    "house": house, "car": car, "snowman": snowman, "traffic_light": traffic_light, "tree": tree, "face": face, "none": clutter,
}
