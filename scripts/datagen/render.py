"""Renders one labelled image: a background, a scene (or clutter), distractors, then camera-like
damage (blur, noise, JPEG). Everything random comes from the generator passed in.

Data version 1 (`render`) is what models 1.0 and 1.1 learnt from; version 2 (`render_v2`) adds
the looks of `styles` (paper, hand-drawn pens, patterned fills, marks, photos of paper)."""

from __future__ import annotations

import colorsys
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from scripts.datagen import scenes, styles
from scripts.datagen.shapes import Shape, label_box, outline

Rng = np.random.Generator
SIZES = (256, 320, 384, 448, 512)
MIN_SIDE_PX = 14  # smaller parts are not worth labelling
ROLE_HUES = {"wheel": (0.0, 0.0, 0.15), "snow": (0.6, 0.05, 0.97), "light0": (0.0, 0.9, 0.9), "light1": (0.14, 0.9, 0.95), "light2": (0.33, 0.9, 0.8),
    "leaf": (0.3, 0.7, 0.55), "trunk": (0.08, 0.7, 0.4)}


@dataclass(frozen=True)
class Labelled:
    shape: Shape
    box: tuple[float, float, float, float, float]


@dataclass(frozen=True)
class Sample:
    image: Image.Image
    scene: str
    objects: list[Labelled]
    encoded: bytes
    extension: str


def _colour(rng: Rng, avoid: list[np.ndarray], role: str) -> tuple[int, int, int]:
    """A colour far enough from `avoid` to be seen; sometimes the role's natural colour."""
    for _ in range(50):
        if role in ROLE_HUES and rng.random() < 0.5:
            h, s, v = ROLE_HUES[role]
            rgb = colorsys.hsv_to_rgb((h + rng.normal(0, 0.02)) % 1, np.clip(s + rng.normal(0, 0.1), 0, 1), np.clip(v + rng.normal(0, 0.1), 0, 1))
        else:
            rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, 1), rng.uniform(0.1, 1))
        colour = np.array(rgb) * 255
        if all(np.linalg.norm(colour - a) > 90 for a in avoid):
            return tuple(int(v) for v in colour)
    return (0, 0, 0) if all(a.mean() > 128 for a in avoid) else (255, 255, 255)


def background(rng: Rng, size: tuple[int, int]) -> Image.Image:
    w, h = size
    base = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.2, 1))) * 255
    style = rng.choice(["solid", "gradient", "noise", "stripes", "checker"])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if style == "solid":
        field = np.zeros((h, w), np.float32)
    elif style == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        ramp = xx * math.cos(angle) + yy * math.sin(angle)
        field = (ramp - ramp.mean()) / (np.ptp(ramp) + 1e-6) * rng.uniform(40, 110)
    elif style == "noise":
        coarse = rng.normal(0, 1, (max(2, h // 16), max(2, w // 16))).astype(np.float32)
        field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC)) * rng.uniform(10, 30)
    elif style == "stripes":
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(6, 40)
        field = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period) * rng.uniform(6, 22)
    else:
        cell = int(rng.integers(8, 40))
        field = (((xx // cell) + (yy // cell)) % 2 - 0.5) * rng.uniform(10, 36)
    pixels = np.clip(base[None, None, :] + field[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _draw(draw: ImageDraw.ImageDraw, shape: Shape, fill: tuple[int, int, int] | None, edge: tuple[int, int, int], width: int, scale: int) -> None:
    points = [(float(x) * scale, float(y) * scale) for x, y in outline(shape)]
    if fill is not None:
        draw.polygon(points, fill=fill)
    if fill is None or width:
        draw.line(points + points[:1], fill=edge, width=max(1, width * scale), joint="curve")


def _fits(shapes: list[Shape], size: tuple[int, int], margin: float = 2) -> bool:
    pts = np.concatenate([outline(s) for s in shapes])
    return bool(pts.min() >= margin and pts[:, 0].max() <= size[0] - margin and pts[:, 1].max() <= size[1] - margin)


def _extent(shape: Shape) -> tuple[float, float, float, float]:
    pts = outline(shape)
    return (*pts.min(axis=0), *pts.max(axis=0))


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Area of the intersection of two axis-aligned boxes, as a share of the smaller one."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller


def _scene_parts(rng: Rng, scene: str, size: tuple[int, int]) -> list[scenes.Part]:
    short = min(size)
    for _ in range(100):
        s = short * rng.uniform(0.45, 0.9)
        parts = scenes.BUILDERS[scene](rng, s)
        placed = scenes.place(
            parts, scale=1.0, rotation=rng.normal(0, 0.12), mirror=bool(rng.random() < 0.5),
            dx=rng.uniform(0.3, 0.7) * size[0], dy=rng.uniform(0.3, 0.7) * size[1],
        )
        if _fits([p.shape for p in placed], size):
            return placed
    raise RuntimeError(f"could not fit a {scene} into {size}")


def _scatter(rng: Rng, count: int, size: tuple[int, int], taken: list[tuple[float, ...]], max_overlap: float) -> list[scenes.Part]:
    """Up to `count` random primitives that overlap what is there by at most `max_overlap`."""
    parts: list[scenes.Part] = []
    short = min(size)
    for _ in range(count * 20):
        if len(parts) == count:
            break
        shape = scenes.random_primitive(rng, short * rng.uniform(0.1, 0.35))
        shape = shape.moved(rng.uniform(0, size[0]), rng.uniform(0, size[1]))
        extent = _extent(shape)
        if _fits([shape], size) and all(_overlap(extent, t) <= max_overlap for t in taken):
            parts.append(scenes.Part(shape, "any"))
            taken.append(extent)
    return parts


def render(rng: Rng, scene: str) -> Sample:
    """One image of `scene` ("none" for clutter), labelled."""
    size = (int(rng.choice(SIZES)), int(rng.choice(SIZES)))
    parts = _parts(rng, scene, size)
    image = background(rng, size)
    supersample = 2 if rng.random() < 0.5 else 1
    canvas = image.resize((size[0] * supersample, size[1] * supersample)) if supersample > 1 else image
    draw = ImageDraw.Draw(canvas)
    bg_mean = np.asarray(image).reshape(-1, 3).mean(axis=0)
    drawn: list[tuple[scenes.Part, np.ndarray]] = []
    for part in parts:
        under = [c for p, c in drawn if _overlap(_extent(p.shape), _extent(part.shape)) > 0]
        colour = _colour(rng, [bg_mean, *under], part.role)
        outlined = rng.random() < 0.25
        width = int(rng.integers(2, 6)) if outlined else (int(rng.integers(1, 4)) if rng.random() < 0.2 else 0)
        edge = colour if outlined else _colour(rng, [np.array(colour)], "any")
        _draw(draw, part.shape, None if outlined else colour, edge, width, supersample)
        drawn.append((part, np.array(colour, dtype=float)))
    if supersample > 1:
        image = canvas.resize(size, Image.LANCZOS)

    image = _damage(rng, image)
    objects = [Labelled(p.shape, label_box(p.shape)) for p in parts]
    encoded, extension = _encode(rng, image)
    return Sample(image=image, scene=scene, objects=objects, encoded=encoded, extension=extension)


V1_SHARE = 0.25  # of version-2 images drawn in version 1's look, so that look is not forgotten


def render_v2(rng: Rng, scene: str) -> Sample:
    """One image of `scene` in one of version 2's looks (or, a quarter of the time, version 1's)."""
    if rng.random() < V1_SHARE:
        return render(rng, scene)
    size = styles.size(rng)
    parts = _parts(rng, scene, size)
    dark = bool(rng.random() < 0.15)
    image = styles.paper(rng, size, dark)
    hand = styles.pen(rng, dark)
    scale = 1 if hand.aliased or max(size) > 900 else 2
    canvas = image.resize((size[0] * scale, size[1] * scale)) if scale > 1 else image
    bg_mean = np.asarray(image).reshape(-1, 3).mean(axis=0)
    drawn: list[tuple[scenes.Part, np.ndarray]] = []
    for part in parts:
        under = [c for p, c in drawn if _overlap(_extent(p.shape), _extent(part.shape)) > 0]
        colour = _colour(rng, [bg_mean, *under], part.role)
        styles.draw_shape(rng, canvas, part.shape, hand, colour, scale)
        drawn.append((part, np.array(colour, dtype=float)))
    if scale > 1:
        image = canvas.resize(size, Image.LANCZOS)
    styles.marks(rng, image, [_extent(p.shape) for p in parts], hand)
    image, boxes = styles.photograph(rng, image, [label_box(p.shape) for p in parts])
    encoded, extension = _encode(rng, image)
    objects = [Labelled(p.shape, box) for p, box in zip(parts, boxes)]
    return Sample(image=image, scene=scene, objects=objects, encoded=encoded, extension=extension)


def _parts(rng: Rng, scene: str, size: tuple[int, int]) -> list[scenes.Part]:
    """The scene's parts (or clutter), with a few unrelated shapes, all big enough to label."""
    if scene == "none":
        parts = _scatter(rng, int(rng.integers(1, 7)), size, [], max_overlap=0.3)
    else:
        parts = _scene_parts(rng, scene, size)
        if rng.random() < 0.35:  # a few unrelated shapes around the scene
            parts += _scatter(rng, int(rng.integers(1, 3)), size, [_extent(p.shape) for p in parts], max_overlap=0.0)
    return [p for p in parts if _big_enough(p.shape)]


def _big_enough(shape: Shape) -> bool:
    """Parts too small to label are not drawn either: an unlabelled shape would teach the
    detector to ignore real ones."""
    _, _, w, h, _ = label_box(shape)
    return min(w, h) >= MIN_SIDE_PX


def _damage(rng: Rng, image: Image.Image) -> Image.Image:
    if rng.random() < 0.4:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.3)))
    if rng.random() < 0.5:
        pixels = np.asarray(image).astype(np.float32)
        pixels += rng.normal(0, rng.uniform(2, 14), pixels.shape)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image


def _encode(rng: Rng, image: Image.Image) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    if rng.random() < 0.6:
        image.save(buffer, "JPEG", quality=int(rng.integers(35, 96)))
        return buffer.getvalue(), ".jpg"
    image.save(buffer, "PNG")
    return buffer.getvalue(), ".png"
