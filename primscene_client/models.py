"""Typed mirrors of the API's JSON bodies. Unknown fields the server may add are kept (and
written back out by `model_dump`), so a newer server does not break an older client."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
FINISHED = frozenset({SUCCEEDED, FAILED})


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Token(_Body):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class User(_Body):
    id: uuid.UUID
    username: str
    is_admin: bool
    created_at: datetime


class Task(_Body):
    id: uuid.UUID
    status: str  # one of STATUSES
    attempts: int
    max_attempts: int
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    callback_url: str | None = None  # the webhook given at submission, on servers that offer webhooks
    webhook_state: str | None = None  # pending, retrying, delivered or failed

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class TaskPage(_Body):
    items: list[Task]
    total: int
    next: str | None = None


class ImageSize(_Body):
    width: int
    height: int


class Primitive(_Body):
    """An oriented box: centre `x, y` and `width, height` normalised to the image (0..1),
    `rotation` in radians, clockwise in image coordinates."""

    class_id: int
    class_name: str
    x: float
    y: float
    width: float
    height: float
    rotation: float
    confidence: float


class ClassScore(_Body):
    class_name: str
    confidence: float


class Scene(_Body):
    class_id: int
    class_name: str
    confidence: float
    top_k: list[ClassScore]


class ModelVersions(_Body):
    detector: str
    classifier: str


class Result(_Body):
    task_id: uuid.UUID
    status: str
    image: ImageSize
    primitives: list[Primitive]
    scene: Scene
    models: ModelVersions


class ModelInfo(_Body):
    name: str
    kind: str  # "detector" or "classifier"
    version: str
    classes: list[str]
    input_size: int


class BatchItem(_Body):
    """One image of a batch submit, in the order sent: its task, or why it was refused."""

    index: int
    filename: str | None = None
    status_code: int  # what a single submit of this image would have answered
    task: Task | None = None
    detail: str | None = None  # why it was refused

    @property
    def accepted(self) -> bool:
        return self.task is not None


class BatchSubmitted(_Body):
    items: list[BatchItem]
    accepted: int
    refused: int
