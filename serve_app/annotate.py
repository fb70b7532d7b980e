"""The result as a picture: the upright input with each primitive's rotated box and label and
the scene name, drawn with Ultralytics' `Annotator` in its OpenCV mode (Hershey text, so no font
file is looked for)."""

from __future__ import annotations

import io

from deployments import offline

# Ultralytics reads its settings when first imported, so the offline ones go first; hence the
# E402 (import not at the top) on the imports below.
offline.configure_ultralytics()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from ultralytics.utils import ops  # noqa: E402
from ultralytics.utils.plotting import Annotator, colors  # noqa: E402

from deployments.contract import Primitive, Scene  # noqa: E402
from deployments.images import to_rgb  # noqa: E402


def corners_px(primitives: list[Primitive], width: int, height: int) -> np.ndarray:
    """Each primitive's four corners in image pixels, shape (n, 4, 2)."""
    xywhr = np.array(
        [[p.x * width, p.y * height, p.width * width, p.height * height, p.rotation] for p in primitives], dtype=np.float32
    ).reshape(-1, 5)
    return ops.xywhr2xyxyxyxy(xywhr)


def render_png(image: bytes, primitives: list[Primitive], scene: Scene) -> bytes:
    """PNG bytes of the annotated picture. Blocking: run it in a worker thread."""
    picture = to_rgb(image)
    bgr = np.ascontiguousarray(np.asarray(picture)[:, :, ::-1])
    annotator = Annotator(bgr, pil=False)
    for primitive, corners in zip(primitives, corners_px(primitives, *picture.size)):
        label = f"{primitive.class_name} {primitive.confidence:.2f}"
        annotator.box_label(corners, label, color=colors(primitive.class_id, bgr=True))
    # OpenCV writes text above its baseline point: put the baseline one text height down so the
    # scene label (and its box) sits inside the picture's top-left corner.
    label = f"{scene.class_name} {scene.confidence:.2f}"
    (_, text_height), _ = cv2.getTextSize(label, 0, fontScale=annotator.sf, thickness=annotator.tf)
    annotator.text((annotator.lw, annotator.lw + text_height + 3), label, box_color=(40, 40, 40))
    out = io.BytesIO()
    Image.fromarray(annotator.result()[:, :, ::-1]).save(out, format="PNG")
    return out.getvalue()
