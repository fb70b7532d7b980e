"""Draws foreign-set images with OpenCV: paper (ruled, grid, dotted, dark, gradient), pens
(clean or hand-drawn with wobble, overshoot and gaps; 1–8 px; aliased or anti-aliased), fills
(none, solid, hatched, cross-hatched, dotted), marks that are not primitives (arrows, lines,
scribbles, Hershey-font text), then a photo of it (perspective, uneven light, blur, noise, JPEG).

Image i is drawn from the random stream (seed, i) alone."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from deployments.vocabulary import SCENES
from scripts.foreign.figures import Figure
from scripts.foreign.scenes import BUILDERS

Rng = np.random.Generator
SEED = 20261202
MIN_SIDE_PX = 14  # figures smaller than this are not drawn (nor labelled)
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class ForeignImage:
    index: int
    scene: str
    encoded: bytes  # JPEG or PNG
    figures: list[Figure]  # as they appear in the final image
    # How it was drawn, for scores broken down by condition (scripts/evaluate.py): name → value.
    conditions: dict[str, str]


def draw(index: int, seed: int = SEED) -> ForeignImage:
    rng = np.random.default_rng([seed, index])
    scene = SCENES[index % len(SCENES)]
    width, height = _size(rng)
    dark = rng.random() < 0.15
    canvas, paper = _paper(rng, width, height, dark)
    figures = _layout(rng, scene, width, height)
    pen = _pen(rng, dark)
    for figure in figures:
        _draw_figure(rng, canvas, figure, pen)
    marks = _marks(rng, canvas, figures, pen)
    canvas, figures, photo = _photograph(rng, canvas, figures)
    jpeg = rng.random() < 0.6
    ok, encoded = cv2.imencode(*((".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 95))]) if jpeg else (".png", canvas, [])))
    assert ok
    conditions = {
        "paper": paper,
        "background": "dark" if dark else "light",
        "outline": "hand-drawn" if pen.wobble else "ruler",
        "stroke": "1–2 px" if pen.thickness <= 2 else "3–4 px" if pen.thickness <= 4 else "5–8 px",
        "edges": "anti-aliased" if pen.antialiased else "aliased",
        "fill": pen.fill,
        "marks beside": "some" if marks else "none",
        **{f"photo: {effect}": "yes" if effect in photo else "no" for effect in PHOTO_EFFECTS},
        "file": "JPEG" if jpeg else "PNG",
    }
    return ForeignImage(index, scene, encoded.tobytes(), figures, conditions)


def _size(rng: Rng) -> tuple[int, int]:
    long = int(rng.integers(260, 1600))
    short = int(long / rng.uniform(1.0, 2.5))
    short = max(short, 200)
    return (long, short) if rng.random() < 0.6 else (short, long)


def _layout(rng: Rng, scene: str, width: int, height: int) -> list[Figure]:
    for _ in range(100):
        s = min(width, height) * rng.uniform(0.5, 0.85)
        cx, cy = rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height
        figures = BUILDERS[scene](rng, cx, cy, s)
        turn = cv2.getRotationMatrix2D((cx, cy), float(rng.normal(0, 6)), 1.0)
        figures = [f.mapped(np.vstack([turn, [0, 0, 1]])) for f in figures]
        inside = all(f.outline.min() >= 3 and (f.outline[:, 0].max() <= width - 3) and (f.outline[:, 1].max() <= height - 3) for f in figures)
        if inside:
            return [f for f in figures if _sides(f) >= MIN_SIDE_PX]
    raise RuntimeError(f"no {scene} fits {width}×{height}")


def _sides(figure: Figure) -> float:
    corners = figure.box()
    return float(min(np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[2] - corners[1])))


def _paper(rng: Rng, width: int, height: int, dark: bool) -> tuple[np.ndarray, str]:
    if dark:  # a blackboard, a dark screen
        base = np.array([rng.uniform(20, 60), rng.uniform(20, 70), rng.uniform(15, 50)])
    else:
        base = np.array([rng.uniform(215, 255), rng.uniform(220, 255), rng.uniform(225, 255)])
    canvas = np.empty((height, width, 3), np.float32)
    canvas[:] = base
    style = rng.choice(["plain", "ruled", "grid", "dotted", "gradient"])
    rule = (200, 160, 120) if not dark else (90, 90, 90)
    step = int(rng.integers(16, 40))
    if style in ("ruled", "grid"):
        for y in range(step, height, step):
            cv2.line(canvas, (0, y), (width, y), rule, 1, cv2.LINE_AA)
        if style == "grid":
            for x in range(step, width, step):
                cv2.line(canvas, (x, 0), (x, height), rule, 1, cv2.LINE_AA)
        elif rng.random() < 0.6:  # the red margin of a school notebook
            margin = int(width * rng.uniform(0.06, 0.15))
            cv2.line(canvas, (margin, 0), (margin, height), (90, 90, 220), 2, cv2.LINE_AA)
    elif style == "dotted":
        for y in range(step, height, step):
            for x in range(step, width, step):
                cv2.circle(canvas, (x, y), 1, rule, -1, cv2.LINE_AA)
    elif style == "gradient":
        ramp = np.linspace(rng.uniform(-40, 0), rng.uniform(0, 40), width if rng.random() < 0.5 else height, dtype=np.float32)
        canvas += ramp[None, :, None] if ramp.size == width else ramp[:, None, None]
    return np.clip(canvas + rng.normal(0, 2, canvas.shape), 0, 255).astype(np.uint8), str(style)


@dataclass(frozen=True)
class Pen:
    colour: Colour
    thickness: int
    antialiased: bool
    wobble: float  # 0: a ruler and compass; else the hand's amplitude, a share of the figure's size
    fill: str  # how figures are filled, for this drawing
    fill_colours: tuple[Colour, ...]


def _pen(rng: Rng, dark: bool) -> Pen:
    ink = (int(rng.uniform(200, 255)),) * 3 if dark else tuple(int(v) for v in rng.choice([[30, 30, 30], [140, 60, 20], [30, 30, 160], [40, 110, 40]]))
    palette = tuple(tuple(int(v) for v in rng.uniform(40, 230, 3)) for _ in range(6))
    return Pen(
        colour=ink,  # type: ignore[arg-type]
        thickness=int(rng.choice([1, 2, 2, 3, 3, 4, 5, 6, 8])),
        antialiased=bool(rng.random() < 0.6),
        wobble=0.0 if rng.random() < 0.35 else float(rng.uniform(0.005, 0.025)),
        fill=str(rng.choice(["none", "none", "solid", "hatched", "cross-hatched", "dotted", "mixed"])),
        fill_colours=palette,  # type: ignore[arg-type]
    )


def _hand(rng: Rng, figure: Figure, wobble: float) -> np.ndarray:
    """The outline as a hand draws it: resampled every few pixels, pushed in and out by a slow
    wave, and closed with a small overshoot (or a small gap)."""
    closed = np.vstack([figure.outline, figure.outline[:1]])
    lengths = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    total = float(lengths.sum())
    at = np.linspace(0, total, max(12, int(total / 3)))
    cumulative = np.concatenate([[0], np.cumsum(lengths)])
    points = np.stack([np.interp(at, cumulative, closed[:, k]) for k in range(2)], 1)
    if wobble == 0:
        return points
    size = math.sqrt(max(1.0, cv2.contourArea(figure.outline.astype(np.float32))))
    phase = rng.uniform(0, 2 * math.pi, 3)
    wave = sum(np.sin(at / total * 2 * math.pi * f + p) / f for f, p in zip((2, 3, 5), phase))
    centre = figure.outline.mean(axis=0)
    away = points - centre
    away /= np.linalg.norm(away, axis=1, keepdims=True) + 1e-6
    points = points + away * (wave * wobble * size)[:, None]
    end = int(len(points) * rng.uniform(-0.03, 0.06))  # > 0: overshoot past the start, < 0: a gap
    return np.vstack([points, points[1 : end + 1]]) if end > 0 else points[: len(points) + end]


def _draw_figure(rng: Rng, canvas: np.ndarray, figure: Figure, pen: Pen) -> None:
    line = cv2.LINE_AA if pen.antialiased else cv2.LINE_8
    fill = str(rng.choice(["none", "solid", "hatched", "cross-hatched", "dotted"])) if pen.fill == "mixed" else pen.fill
    if fill != "none":
        mask = np.zeros(canvas.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(figure.outline).astype(np.int32)], 255, line)
        colour = pen.fill_colours[int(rng.integers(len(pen.fill_colours)))]
        pattern = _pattern(rng, canvas.shape[:2], fill, colour, canvas)
        weight = (mask.astype(np.float32) / 255)[..., None]
        canvas[:] = (canvas * (1 - weight) + pattern * weight).astype(np.uint8)
    points = np.round(_hand(rng, figure, pen.wobble)).astype(np.int32)
    cv2.polylines(canvas, [points], pen.wobble == 0, pen.colour, pen.thickness, line)


def _pattern(rng: Rng, shape: tuple[int, int], fill: str, colour: Colour, canvas: np.ndarray) -> np.ndarray:
    height, width = shape
    if fill == "solid":
        pattern = np.empty_like(canvas)
        pattern[:] = colour
        return pattern
    pattern = canvas.copy()
    step = int(rng.integers(4, 12))
    if fill == "dotted":
        for y in range(0, height, step):
            for x in range((y // step % 2) * step // 2, width, step):
                cv2.circle(pattern, (x, y), 1, colour, -1)
        return pattern
    angles = [rng.uniform(0, math.pi)]
    if fill == "cross-hatched":
        angles.append(angles[0] + rng.uniform(math.pi / 4, math.pi / 2))
    reach = width + height
    for angle in angles:
        dx, dy = math.cos(angle), math.sin(angle)
        for offset in range(-reach, reach, step):
            ox, oy = -dy * offset + width / 2, dx * offset + height / 2
            cv2.line(pattern, (int(ox - dx * reach), int(oy - dy * reach)), (int(ox + dx * reach), int(oy + dy * reach)), colour, 1, cv2.LINE_AA)
    return pattern


PHOTO_EFFECTS = ("perspective", "uneven light", "low contrast", "blur", "noise")  # as `_photograph` names them
WORDS = ("shapes", "fig. 2", "note", "A", "B", "see below", "draft", "x = 3", "todo", "OK")


def _marks(rng: Rng, canvas: np.ndarray, figures: list[Figure], pen: Pen) -> int:
    """Things drawn beside the figures that are not primitives, kept off them; how many."""
    height, width = canvas.shape[:2]
    taken = [f.extent() for f in figures]
    drawn = 0
    for _ in range(int(rng.integers(0, 5))):
        x, y = rng.uniform(0.05, 0.9) * width, rng.uniform(0.05, 0.9) * height
        size = min(width, height) * rng.uniform(0.08, 0.2)
        box = (x - 4, y - size - 4, x + size + 4, y + size + 4)
        if any(not (box[2] < t[0] or t[2] < box[0] or box[3] < t[1] or t[3] < box[1]) for t in taken):
            continue
        taken.append(box)
        drawn += 1
        kind = rng.choice(["arrow", "line", "scribble", "text"])
        start, end = (int(x), int(y)), (int(x + size * rng.uniform(0.5, 1)), int(y + size * rng.uniform(-1, 1)))
        if kind == "arrow":
            cv2.arrowedLine(canvas, start, end, pen.colour, max(1, pen.thickness // 2), cv2.LINE_AA, tipLength=0.25)
        elif kind == "line":
            cv2.line(canvas, start, end, pen.colour, pen.thickness, cv2.LINE_AA)
        elif kind == "scribble":
            walk = np.cumsum(rng.normal(0, size / 8, (int(rng.integers(8, 25)), 2)), axis=0) + (x + size / 2, y)
            cv2.polylines(canvas, [walk.astype(np.int32)], False, pen.colour, max(1, pen.thickness // 2), cv2.LINE_AA)
        else:
            scale = size / 60
            cv2.putText(canvas, str(rng.choice(WORDS)), start, int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
                cv2.FONT_HERSHEY_PLAIN])),
                        max(0.4, scale), pen.colour, max(1, pen.thickness // 3), cv2.LINE_AA)
    return drawn


def _photograph(rng: Rng, canvas: np.ndarray, figures: list[Figure]) -> tuple[np.ndarray, list[Figure], list[str]]:
    """A phone picture of the drawing: a slight perspective, light falling off to one side,
    vignetting, blur, sensor noise, lower contrast; and the names of the effects it has."""
    height, width = canvas.shape[:2]
    effects = []
    if rng.random() < 0.5:
        src = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
        dst = (src + rng.uniform(-0.04, 0.04, (4, 2)) * (width, height)).astype(np.float32)
        transform = cv2.getPerspectiveTransform(src, dst)
        canvas = cv2.warpPerspective(canvas, transform, (width, height), borderMode=cv2.BORDER_REPLICATE)
        figures = [f.mapped(transform) for f in figures]
        effects.append("perspective")
    pixels = canvas.astype(np.float32)
    if rng.random() < 0.6:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (xx / width - 0.5) * math.cos(angle) + (yy / height - 0.5) * math.sin(angle)
        light = 1 + ramp * rng.uniform(0.2, 0.6)
        if rng.random() < 0.5:
            light *= 1 - rng.uniform(0.1, 0.35) * (((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) * 2)
        pixels *= light[..., None]
        effects.append("uneven light")
    if rng.random() < 0.3:  # low contrast
        pixels = pixels.mean() + (pixels - pixels.mean()) * rng.uniform(0.45, 0.8)
        effects.append("low contrast")
    if rng.random() < 0.4:
        pixels = cv2.GaussianBlur(pixels, (0, 0), rng.uniform(0.5, 1.8))
        effects.append("blur")
    if rng.random() < 0.5:
        pixels += rng.normal(0, rng.uniform(2, 12), pixels.shape)
        effects.append("noise")
    return np.clip(pixels, 0, 255).astype(np.uint8), figures, effects
