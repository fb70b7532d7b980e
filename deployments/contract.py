"""The contract between the service and its models.

The ingress and dispatcher only know these types: a *pipeline* turns one image into primitives
plus a scene, and a *model catalog* lists the models and runs one of them on demand. The Ray
Serve graph implements both; tests may implement them over plain functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class ImagePayload:
    """An accepted upload: the original encoded bytes, never re-encoded on the way to a model."""

    data: bytes
    content_type: str
    width: int
    height: int


class Primitive(BaseModel):
    """One oriented box. `x, y` centre and `width, height` are normalised to the image;
    `rotation` is in radians, clockwise in image coordinates (Ultralytics' `xywhr`)."""

    class_id: int = Field(ge=0)
    class_name: str
    x: float
    y: float
    width: float = Field(ge=0)
    height: float = Field(ge=0)
    rotation: float
    confidence: float = Field(ge=0, le=1)


class ClassScore(BaseModel):
    class_name: str
    confidence: float = Field(ge=0, le=1)


class Scene(BaseModel):
    class_id: int = Field(ge=0)
    class_name: str
    confidence: float = Field(ge=0, le=1)
    top_k: list[ClassScore]


class ModelVersions(BaseModel):
    detector: str = Field(examples=["primitive-detector:1.0.0"])
    classifier: str = Field(examples=["scene-classifier:1.0.0"])


class PipelineResult(BaseModel):
    primitives: list[Primitive]
    scene: Scene
    models: ModelVersions


class ModelInfo(BaseModel):
    name: str
    kind: Literal["detector", "classifier"]
    version: str
    classes: list[str]
    input_size: int = Field(description="Square side, in pixels, that images are resized to.")


class ModelPrediction(BaseModel):
    """What one model alone says about an image (`POST /models/{name}/predict`)."""

    model: str = Field(description="`name:version` of the model that answered.")
    primitives: list[Primitive] | None = None
    scene: Scene | None = None


class ImageRejected(Exception):
    """The model cannot process this image; retrying will not help, so the task fails at once."""


class UnknownModel(LookupError):
    """No model of that name is served."""


Pipeline = Callable[[ImagePayload], Awaitable[PipelineResult]]


class BatchPipeline(Protocol):
    """Runs many images through the graph in one go: the dispatcher's view of the models.

    Returns one outcome per image, in order: its result, `ImageRejected` when that image cannot
    be processed (its task fails at once), or another exception when its attempt failed and may
    be retried. One bad image never fails the others; an exception raised by `run_batch` itself
    fails every image of the batch (retryably)."""

    async def run_batch(self, images: list[ImagePayload]) -> list[PipelineResult | Exception]: ...


class OneByOne:
    """A `BatchPipeline` over a one-image `Pipeline`, calling it for every image concurrently."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def run_batch(self, images: list[ImagePayload]) -> list[PipelineResult | Exception]:
        outcomes = await asyncio.gather(*(self.pipeline(image) for image in images), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome  # cancellation and the like are not an image's outcome
        return list(outcomes)  # type: ignore[arg-type]  # only results and Exceptions remain


class ModelCatalog(Protocol):
    async def list_models(self) -> list[ModelInfo]: ...

    async def predict(self, name: str, image: ImagePayload) -> ModelPrediction: ...

    async def ready(self) -> bool: ...
