"""The result as a picture: the upright input with each primitive's rotated box and label and
the scene name, drawn with Ultralytics' `Annotator` in its OpenCV mode (Hershey text, so no font
file is looked for)."""

from __future__ import annotations

import io
from functools import cache
from types import ModuleType

import cv2
import numpy as np
from PIL import Image

from deployments import offline
from deployments.contract import Primitive, Scene
from deployments.images import to_rgb


@cache
def _ultralytics() -> tuple[ModuleType, ModuleType]:
    """Ultralytics' `ops` and `plotting`, imported on the first picture drawn: they bring torch
    (over a second to import), which the rest of the API does not need. Ultralytics reads its
    settings when first imported, so the offline ones go first."""
    offline.configure_ultralytics()
    from ultralytics.utils import ops, plotting

    return ops, plotting


def corners_px(primitives: list[Primitive], width: int, height: int) -> np.ndarray:
    """Each primitive's four corners in image pixels, shape (n, 4, 2)."""
    xywhr = np.array(
        [[p.x * width, p.y * height, p.width * width, p.height * height, p.rotation] for p in primitives], dtype=np.float32
    ).reshape(-1, 5)
    ops, _ = _ultralytics()
    return ops.xywhr2xyxyxyxy(xywhr)


def render_png(image: bytes, primitives: list[Primitive], scene: Scene) -> bytes:
    """PNG bytes of the annotated picture. Blocking: run it in a worker thread."""
    picture = to_rgb(image)
    bgr = np.ascontiguousarray(np.asarray(picture)[:, :, ::-1])
    _, plotting = _ultralytics()
    annotator = plotting.Annotator(bgr, pil=False)
    for primitive, corners in zip(primitives, corners_px(primitives, *picture.size)):
        label = f"{primitive.class_name} {primitive.confidence:.2f}"
        annotator.box_label(corners, label, color=plotting.colors(primitive.class_id, bgr=True))
    # OpenCV writes text above its baseline point: put the baseline one text height down so the
    # scene label (and its box) sits inside the picture's top-left corner.
    label = f"{scene.class_name} {scene.confidence:.2f}"
    (_, text_height), _ = cv2.getTextSize(label, 0, fontScale=annotator.sf, thickness=annotator.tf)
    annotator.text((annotator.lw, annotator.lw + text_height + 3), label, box_color=(40, 40, 40))
    out = io.BytesIO()
    Image.fromarray(annotator.result()[:, :, ::-1]).save(out, format="PNG")
    return out.getvalue()
