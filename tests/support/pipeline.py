"""A small, honest stand-in for the model graph, used only by tests.

It really looks at the image, decoded upright as the real models decode it: the primitive it
reports is the bounding box of every pixel that differs from the top-left corner's colour, so a
test can check the result against what it drew.
"""

from __future__ import annotations

import asyncio

from PIL import Image, ImageChops

from deployments.contract import (
    ClassScore,
    ImagePayload,
    ImageRejected,
    ModelInfo,
    ModelPrediction,
    ModelVersions,
    OneByOne,
    PipelineResult,
    Primitive,
    Scene,
    UnknownModel,
)
from deployments.images import to_rgb

DETECTOR = ModelInfo(name="bbox-detector", kind="detector", version="test", classes=["rectangle"], input_size=64)
CLASSIFIER = ModelInfo(name="blank-classifier", kind="classifier", version="test", classes=["none", "shape"], input_size=64)
VERSIONS = ModelVersions(detector=f"{DETECTOR.name}:test", classifier=f"{CLASSIFIER.name}:test")


def find_box(image: ImagePayload) -> list[Primitive]:
    rgb = to_rgb(image.data)  # EXIF orientation applied, like the models' input
    background = Image.new("RGB", rgb.size, rgb.getpixel((0, 0)))
    box = ImageChops.difference(rgb, background).getbbox()
    if box is None:
        return []
    left, top, right, bottom = box
    w, h = rgb.size
    return [
        Primitive(
            class_id=0, class_name="rectangle", x=(left + right) / 2 / w, y=(top + bottom) / 2 / h,
            width=(right - left) / w, height=(bottom - top) / h, rotation=0.0, confidence=1.0,
        )
    ]


def name_scene(primitives: list[Primitive]) -> Scene:
    name = "shape" if primitives else "none"
    other = "none" if primitives else "shape"
    return Scene(
        class_id=CLASSIFIER.classes.index(name), class_name=name, confidence=0.9,
        top_k=[ClassScore(class_name=name, confidence=0.9), ClassScore(class_name=other, confidence=0.1)],
    )


class BoundingBoxPipeline:
    """Pipeline: image → bounding-box primitive → 'shape' or 'none'. `delay_s` simulates work;
    images narrower than `reject_below_width` are refused as the real models would refuse them.
    The dispatcher calls `run_batch`, which runs every image of a batch through `__call__`
    concurrently (subclasses change `__call__`).

    One pipeline serves every test of a file (tests/conftest.py): `reset` puts its settings back
    and ends the delays still running, so that stopping the app need not wait for them."""

    def __init__(self, delay_s: float = 0.0, reject_below_width: int = 0) -> None:
        self._initial = (delay_s, reject_below_width)
        self.delay_s = delay_s
        self.reject_below_width = reject_below_width
        self.calls = 0
        self._generation = 0  # counts resets

    def reset(self) -> None:
        self._generation += 1
        self.delay_s, self.reject_below_width = self._initial
        self.calls = 0

    async def work(self, seconds: float) -> None:
        """Sleep `seconds`, unless `reset` comes first (checked every 50 ms: a live server runs
        this pipeline on an event loop of its own)."""
        generation, loop = self._generation, asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._generation == generation and (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(left, 0.05))

    async def __call__(self, image: ImagePayload) -> PipelineResult:
        self.calls += 1
        if self.delay_s:
            await self.work(self.delay_s)
        if image.width < self.reject_below_width:
            raise ImageRejected(f"images must be at least {self.reject_below_width} pixels wide")
        primitives = find_box(image)
        return PipelineResult(primitives=primitives, scene=name_scene(primitives), models=VERSIONS)

    async def run_batch(self, images: list[ImagePayload]) -> list[PipelineResult | Exception]:
        return await OneByOne(self).run_batch(images)


class BoundingBoxCatalog:
    async def list_models(self) -> list[ModelInfo]:
        return [DETECTOR, CLASSIFIER]

    async def predict(self, name: str, image: ImagePayload) -> ModelPrediction:
        primitives = find_box(image)
        if name == DETECTOR.name:
            return ModelPrediction(model=VERSIONS.detector, primitives=primitives)
        if name == CLASSIFIER.name:
            return ModelPrediction(model=VERSIONS.classifier, scene=name_scene(primitives))
        raise UnknownModel(name)

    async def ready(self) -> bool:
        return True
