"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from db.models import TaskStatus, WebhookState
from deployments.contract import ModelVersions, Primitive, Scene


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong and what to change.")


class ValidationIssue(BaseModel):
    """One way the request does not match its schema (pydantic's error format, as FastAPI sends it)."""

    loc: list[str | int] = Field(description="Where: the part of the request, then the field.")
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class InvalidRequestBody(BaseModel):
    """A 422: FastAPI's list of validation issues, or one sentence from our own checks."""

    detail: str | list[ValidationIssue] = Field(
        description="A list when parameters or body do not match the schema; a sentence for a corrupt image, a bad cursor, a weak password."
    )


class NotFinishedBody(ErrorBody):
    status: TaskStatus = Field(description="The task's current status.")
    error: str | None = Field(None, description="Why the task failed, when it did.")


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=10, max_length=128, description="10 to 128 characters, not the username.")
    # Strict: the schema says boolean, so 0/1 or "yes" are refused (422) rather than read as a flag.
    is_admin: bool = Field(False, strict=True)


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    is_admin: bool
    created_at: datetime


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: TaskStatus
    attempts: int = Field(description="Attempts started so far.")
    max_attempts: int
    error: str | None = Field(description="Why the last attempt failed, if it did.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    callback_url: str | None = Field(None, description="Where the outcome is POSTed once the task has finished.")
    webhook_state: WebhookState | None = Field(None, description="Null without a callback URL. Attempts: `GET …/webhook`.")


class WebhookAttempt(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null if it could not be reached.")
    error: str | None = Field(description="Why the attempt did not count as delivered.")
    delivered: bool


class WebhookStatus(BaseModel):
    callback_url: str | None
    state: WebhookState | None
    next_attempt_at: datetime | None = Field(description="When the next attempt is due, while `retrying`.")
    attempts: list[WebhookAttempt]


class WebhookSecret(BaseModel):
    secret: str = Field(description="HMAC-SHA256 key of your webhooks' `X-Primscene-Signature`.")


class TaskList(BaseModel):
    items: list[TaskPublic]
    total: int = Field(description="How many of the caller's tasks match the filter.")
    next: str | None = Field(description="Cursor for the next page; null on the last page.")


class ImageSize(BaseModel):
    width: int
    height: int


class TaskResult(BaseModel):
    task_id: uuid.UUID
    status: TaskStatus
    image: ImageSize
    primitives: list[Primitive]
    scene: Scene
    models: ModelVersions


class TaskWithResult(TaskPublic):
    """A task as the submit and task routes answer it. `result` is filled only for a request that
    asked to wait (`Prefer: wait=S` on submit, `?wait=S` on the task) and whose task succeeded
    in time; otherwise it is null and `GET …/result` has it once the task has succeeded."""

    result: TaskResult | None = None


class BatchItem(BaseModel):
    """One image of a batch submit, in the order sent: its task, or why it was refused."""

    index: int = Field(description="Position of the image among the request's `images` parts, from 0.")
    filename: str | None = Field(description="The part's filename, as the client sent it (only for the client's reference).")
    status_code: int = Field(
        description="What a single submit of this image would have answered: 202 (or 200 when it finished while the request waited), "
        "else the refusal's code (413, 415, 422, 429, 503, 409)."
    )
    task: TaskWithResult | None = Field(None, description="The task made for this image (or the earlier one, for a repeated Idempotency-Key).")
    detail: str | None = Field(None, description="Why this image was refused; null when it was accepted.")


class BatchSubmitted(BaseModel):
    items: list[BatchItem]
    accepted: int = Field(description="How many images have a task.")
    refused: int = Field(description="How many images were refused (each item says why).")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: bool
    models: bool
