"""The looks of data version 2: paper, pens, fills, marks that are not primitives, and the photo
taken of the drawing. Style must carry no class information, so every look is drawn at random
for every shape and scene alike.

Pillow and NumPy only: the foreign test set (`scripts/foreign`) is drawn by other code with
OpenCV, so that a score on it measures what was learnt, not what was copied.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from scripts.datagen.shapes import Shape, box_corners, outline

Rng = np.random.Generator
Colour = tuple[int, int, int]
Box = tuple[float, float, float, float, float]


def size(rng: Rng) -> tuple[int, int]:
    """200–1600 px on the long side (most of them small), aspect up to 3:1 either way."""
    long = int(round(math.exp(rng.uniform(math.log(256), math.log(1600)))))
    short = max(200, int(long / rng.uniform(1.0, 3.0)))
    return (long, short) if rng.random() < 0.5 else (short, long)


def _rgb(h: float, s: float, v: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(h % 1, min(max(s, 0), 1), min(max(v, 0), 1))
    return int(r * 255), int(g * 255), int(b * 255)


def paper(rng: Rng, canvas_size: tuple[int, int], dark: bool) -> Image.Image:
    """Plain, ruled (with a margin), grid or dotted paper; a gradient or mottled sheet; or a
    dark board. The lines are thin and long, like the edges of thin rectangles: they are here
    so that the detector learns they are not."""
    w, h = canvas_size
    base = np.array(_rgb(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.05, 0.25)) if dark else _rgb(rng.random(), rng.uniform(0, 0.12),
        rng.uniform(0.85, 1)), np.float32)
    pixels = np.empty((h, w, 3), np.float32)
    pixels[:] = base
    style = rng.choice(["plain", "ruled", "grid", "dotted", "gradient", "mottled"])
    if style == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = xx / w * math.cos(angle) + yy / h * math.sin(angle)
        pixels += ((ramp - ramp.mean()) * rng.uniform(30, 90))[..., None]
    elif style == "mottled":
        coarse = rng.normal(0, 1, (max(2, h // 24), max(2, w // 24))).astype(np.float32)
        pixels += np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC))[..., None] * rng.uniform(6, 20)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if style in ("ruled", "grid", "dotted"):
        draw = ImageDraw.Draw(image)
        line = _rgb(rng.uniform(0.5, 0.65), rng.uniform(0.2, 0.6), 0.5 if dark else rng.uniform(0.6, 0.85))
        step = int(rng.integers(12, 45))
        width = int(rng.integers(1, 3))
        if style == "dotted":
            for y in range(step // 2, h, step):
                for x in range(step // 2, w, step):
                    draw.ellipse((x - width, y - width, x + width, y + width), fill=line)
        else:
            for y in range(int(rng.integers(0, step)), h, step):
                draw.line((0, y, w, y), fill=line, width=width)
            if style == "grid":
                for x in range(int(rng.integers(0, step)), w, step):
                    draw.line((x, 0, x, h), fill=line, width=width)
            if rng.random() < 0.5:
                x = int(w * rng.uniform(0.05, 0.2))
                draw.line((x, 0, x, h), fill=_rgb(0.0, 0.6, 0.85), width=int(rng.integers(1, 4)))
    return image


@dataclass(frozen=True)
class Pen:
    """How one drawing is drawn: the same hand for all its shapes, as a person would."""

    width: int  # stroke width, 1–8 px at the final size
    wobble: float  # 0: ruler and compass; else the hand's amplitude, a share of the shape's size
    aliased: bool
    fill: str  # none | solid | transparent | hatched | cross-hatched | dotted | gradient | mixed
    ink: Colour


FILLS = ("none", "solid", "transparent", "hatched", "cross-hatched", "dotted", "gradient")


def pen(rng: Rng, dark: bool) -> Pen:
    ink = _rgb(rng.random(), rng.uniform(0, 0.4), rng.uniform(0.85, 1)) if dark else _rgb(rng.random(), rng.uniform(0, 0.9), rng.uniform(0, 0.55))
    return Pen(
        width=int(rng.choice([1, 2, 2, 3, 3, 4, 5, 6, 8])),
        wobble=0.0 if rng.random() < 0.4 else float(rng.uniform(0.004, 0.03)),
        aliased=bool(rng.random() < 0.35),
        fill=str(rng.choice([*FILLS, "mixed", "mixed"])),
        ink=ink,
    )


def _stroke_points(rng: Rng, shape: Shape, wobble: float, scale: int) -> list[tuple[float, float]]:
    """The outline as a hand draws it: resampled every few pixels, pushed out and in by a slow
    wave, closed with a small overshoot past the start or a small gap before it."""
    corners = outline(shape)
    closed = np.vstack([corners, corners[:1]])
    steps = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    along = np.concatenate([[0], np.cumsum(steps)])
    at = np.linspace(0, along[-1], max(16, int(along[-1] / 3)))
    points = np.stack([np.interp(at, along, closed[:, k]) for k in range(2)], 1)
    if wobble > 0:
        phase = rng.uniform(0, 2 * math.pi, 3)
        wave = sum(np.sin(at / along[-1] * 2 * math.pi * f + p) / f for f, p in zip((2, 3, 5), phase))
        away = points - (shape.cx, shape.cy)
        away /= np.linalg.norm(away, axis=1, keepdims=True) + 1e-6
        points = points + away * (wave * wobble * math.sqrt(shape.width * shape.height))[:, None]
        end = int(len(points) * rng.uniform(-0.03, 0.07))
        points = np.vstack([points, points[1 : end + 1]]) if end > 0 else points[: len(points) + end]
    return [(float(x) * scale, float(y) * scale) for x, y in points]


def _fill_pattern(rng: Rng, kind: str, canvas: Image.Image, colour: Colour, scale: int) -> Image.Image:
    w, h = canvas.size
    if kind == "gradient":
        other = tuple(int(c * rng.uniform(0.4, 0.8) + 255 * rng.uniform(0, 0.3)) for c in colour)
        ramp = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        mix = ramp[None, :, None] if ramp.size == w else ramp[:, None, None]
        pixels = np.array(colour, np.float32) * (1 - mix) + np.array(other, np.float32) * mix
        return Image.fromarray(np.broadcast_to(pixels, (h, w, 3)).astype(np.uint8), "RGB")
    if kind in ("solid", "transparent"):
        return Image.new("RGB", canvas.size, colour)
    pattern = canvas.copy()
    draw = ImageDraw.Draw(pattern)
    step = int(rng.integers(4, 14)) * scale
    if kind == "dotted":
        r = max(1, scale)
        for y in range(0, h, step):
            for x in range((y // step % 2) * step // 2, w, step):
                draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        return pattern
    angles = [rng.uniform(0, math.pi)]
    if kind == "cross-hatched":
        angles.append(angles[0] + rng.uniform(math.pi / 4, math.pi / 2))
    reach = w + h
    for angle in angles:
        dx, dy = math.cos(angle), math.sin(angle)
        for offset in range(-reach, reach, step):
            ox, oy = w / 2 - dy * offset, h / 2 + dx * offset
            draw.line((ox - dx * reach, oy - dy * reach, ox + dx * reach, oy + dy * reach), fill=colour, width=max(1, int(rng.integers(1, 3)) * scale))
    return pattern


def draw_shape(rng: Rng, canvas: Image.Image, shape: Shape, hand: Pen, colour: Colour, scale: int) -> None:
    """One shape on `canvas` (drawn `scale` times larger than the final image)."""
    fill = str(rng.choice(FILLS)) if hand.fill == "mixed" else hand.fill
    points = [(float(x) * scale, float(y) * scale) for x, y in outline(shape)]
    if fill != "none":
        mask = Image.new("L", canvas.size, 0)
        ImageDraw.Draw(mask).polygon(points, fill=int(rng.uniform(70, 170)) if fill == "transparent" else 255)
        canvas.paste(_fill_pattern(rng, fill, canvas, colour, scale), (0, 0), mask)
    stroke = _stroke_points(rng, shape, hand.wobble, scale)
    draw = ImageDraw.Draw(canvas)
    ink = colour if fill == "none" and rng.random() < 0.5 else hand.ink
    width = max(1, hand.width * scale)
    if hand.wobble > 0 and rng.random() < 0.5:  # the pressure of a hand: the width varies along the stroke
        for start in range(0, len(stroke) - 1, 6):
            draw.line(stroke[start : start + 7], fill=ink, width=max(1, int(width * rng.uniform(0.5, 1.4))), joint="curve")
    else:
        closed = stroke + stroke[:1] if hand.wobble == 0 else stroke
        draw.line(closed, fill=ink, width=width, joint="curve")


def marks(rng: Rng, canvas: Image.Image, taken: list[tuple[float, float, float, float]], hand: Pen) -> None:
    """Lines, arrows, scribbles and text-like squiggles beside the shapes: not primitives, never
    labelled, so the detector learns to leave them alone."""
    w, h = canvas.size
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 6))):
        size_px = min(w, h) * rng.uniform(0.06, 0.25)
        x, y = rng.uniform(0, w - size_px), rng.uniform(size_px / 2, h - size_px / 2)
        box = (x - 3, y - size_px / 2 - 3, x + size_px + 3, y + size_px / 2 + 3)
        if any(not (box[2] < t[0] or t[2] < box[0] or box[3] < t[1] or t[3] < box[1]) for t in taken):
            continue
        taken.append(box)
        width = max(1, hand.width // int(rng.integers(1, 3)))
        kind = rng.choice(["line", "arrow", "scribble", "text"])
        if kind in ("line", "arrow"):
            end = (x + size_px, y + rng.uniform(-0.5, 0.5) * size_px)
            draw.line((x, y, *end), fill=hand.ink, width=width)
            if kind == "arrow":
                angle = math.atan2(end[1] - y, end[0] - x)
                for side in (-1, 1):
                    tip = angle + math.pi - side * 0.45
                    draw.line((*end, end[0] + math.cos(tip) * size_px * 0.2, end[1] + math.sin(tip) * size_px * 0.2), fill=hand.ink, width=width)
        elif kind == "scribble":
            walk = np.cumsum(rng.normal(0, size_px / 10, (int(rng.integers(6, 25)), 2)), axis=0) + (x + size_px / 2, y)
            draw.line([tuple(p) for p in walk], fill=hand.ink, width=width, joint="curve")
        else:  # a line of handwriting: loops on a baseline
            letter = size_px / int(rng.integers(4, 10))
            t = np.linspace(0, size_px, int(size_px / 1.5) + 2)
            ys = y + np.sin(t / letter * 2 * math.pi) * letter * 0.4 * rng.uniform(0.5, 1.2, t.size) ** 0.2
            xs = x + t + np.cos(t / letter * 2 * math.pi) * letter * 0.25
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=hand.ink, width=max(1, width // 2))


def photograph(rng: Rng, image: Image.Image, boxes: list[Box]) -> tuple[Image.Image, list[Box]]:
    """A phone picture of the drawing: a slight perspective, uneven light and a soft shadow,
    vignetting, low contrast, blur, sensor noise. Boxes follow the perspective."""
    w, h = image.size
    if rng.random() < 0.45:
        quad = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
        moved = quad + rng.uniform(-0.05, 0.05, (4, 2)) * (w, h)
        forward = _perspective(quad, moved)
        # Pillow maps each output pixel back to the input: give it the inverse transform.
        image = image.transform((w, h), Image.PERSPECTIVE, tuple(_perspective(moved, quad).ravel()[:8]), Image.BICUBIC,
            fillcolor=tuple(int(v) for v in np.asarray(image)[0, 0]))
        boxes = [_warped_box(box, forward) for box in boxes]
    pixels = np.asarray(image).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * math.pi)
        light = 1 + ((xx / w - 0.5) * math.cos(angle) + (yy / h - 0.5) * math.sin(angle)) * rng.uniform(0.2, 0.7)
        pixels *= light[..., None]
    if rng.random() < 0.25:  # the soft shadow of a hand or a phone
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.2, 0.6) * max(w, h)
        pixels *= (1 - rng.uniform(0.15, 0.4) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[..., None]
    if rng.random() < 0.3:
        pixels *= (1 - rng.uniform(0.1, 0.4) * ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * 2)[..., None]
    if rng.random() < 0.25:
        pixels = pixels.mean() + (pixels - pixels.mean()) * rng.uniform(0.4, 0.8)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.8)))
    if rng.random() < 0.5:
        noisy = np.asarray(image).astype(np.float32) + rng.normal(0, rng.uniform(2, 14), (h, w, 3))
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return image, boxes


def _perspective(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3×3 homography taking the 4 points `src` to `dst`."""
    rows = []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, v])
    a = np.array(rows)
    solution = np.linalg.solve(a[:, :8], a[:, 8])
    return np.append(solution, 1).reshape(3, 3)


def _warped_box(box: Box, homography: np.ndarray) -> Box:
    """The box whose corners are nearest the warped corners of `box`: same centre and mean
    sides, turned to the warped first edge (a mild warp keeps it close to a rectangle)."""
    corners = np.hstack([box_corners(box), np.ones((4, 1))]) @ homography.T
    corners = corners[:, :2] / corners[:, 2:]
    first, second = corners[1] - corners[0], corners[2] - corners[1]
    width = (np.linalg.norm(first) + np.linalg.norm(corners[2] - corners[3])) / 2
    height = (np.linalg.norm(second) + np.linalg.norm(corners[3] - corners[0])) / 2
    rotation = math.atan2(first[1] + (corners[2] - corners[3])[1], first[0] + (corners[2] - corners[3])[0])
    cx, cy = corners.mean(axis=0)
    return float(cx), float(cy), float(width), float(height), rotation
