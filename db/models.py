"""Database tables: users, tasks, their inputs and their results."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, ForeignKey, Index, LargeBinary, MetaData, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime, utcnow

# Stable constraint names, so migrations can refer to them on every backend.
SQLModel.metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class TaskStatus(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"

    @property
    def finished(self) -> bool:
        return self.value in FINISHED


# The one definition of which statuses are final; queries use these tuples of values.
FINISHED = (TaskStatus.succeeded.value, TaskStatus.failed.value)
UNFINISHED = tuple(s.value for s in TaskStatus if s.value not in FINISHED)
QUEUED_SQL = f"status = '{TaskStatus.queued.value}'"
UNFINISHED_SQL = f"status IN ({', '.join(repr(s) for s in UNFINISHED)})"


class WebhookState(str, Enum):
    """How delivery of a task's webhook stands (None on a task without `callback_url`)."""

    pending = "pending"  # set with the URL; due once the task has finished
    retrying = "retrying"  # a delivery failed; due again at `webhook_next_at`
    delivered = "delivered"
    failed = "failed"  # every try failed


WEBHOOK_DUE = (WebhookState.pending.value, WebhookState.retrying.value)


def one_of(column: str, values: type[Enum]) -> str:
    """A CHECK constraint's text: `column` holds one of the enum's values."""
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _timestamp(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=UTCDateTime, nullable=True)
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _owned_by_task() -> Column[uuid.UUID]:
    return Column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    username: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    hashed_password: str = Field(sa_column=Column(String(255), nullable=False))
    is_admin: bool = False
    created_at: datetime = _timestamp()
    # HMAC key for signing this user's webhooks; made on first use.
    webhook_secret: str | None = Field(default=None, sa_column=Column(String(64)))


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(one_of("status", TaskStatus), name="status"),
        CheckConstraint(f"webhook_state IS NULL OR {one_of('webhook_state', WebhookState)}", name="webhook_state"),
        UniqueConstraint("owner_id", "idempotency_key"),
        Index("ix_tasks_status_run_after", "status", "run_after"),
        # Unfinished tasks only, as small as the queue however long the history (migration 0006):
        # the queued ones in claiming order, and the owners of all, for the submit's bounds check.
        Index("ix_tasks_queued_created_at_id", "created_at", "id", postgresql_where=text(QUEUED_SQL), sqlite_where=text(QUEUED_SQL)),
        Index("ix_tasks_unfinished_owner_id", "owner_id", postgresql_where=text(UNFINISHED_SQL), sqlite_where=text(UNFINISHED_SQL)),
        Index("ix_tasks_owner_id_created_at", "owner_id", "created_at"),
        Index("ix_tasks_owner_id_status", "owner_id", "status"),
        Index("ix_tasks_finished_at", "finished_at"),  # the retention job's range scan
        Index("ix_tasks_webhook_state_webhook_next_at", "webhook_state", "webhook_next_at"),  # webhooks due
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    status: str = Field(default=TaskStatus.queued.value, sa_column=Column(String(16), nullable=False))
    attempts: int = 0
    max_attempts: int
    error: str | None = Field(default=None, sa_column=Column(Text))
    idempotency_key: str | None = Field(default=None, sa_column=Column(String(255)))
    worker_id: str | None = Field(default=None, sa_column=Column(String(128)))
    run_after: datetime = _timestamp()
    lease_expires_at: datetime | None = _timestamp(nullable=True)
    created_at: datetime = _timestamp()
    started_at: datetime | None = _timestamp(nullable=True)
    finished_at: datetime | None = _timestamp(nullable=True)
    # Webhook: where to POST the outcome once the task has finished, and how delivery stands
    # (a WebhookState value; None without a URL).
    callback_url: str | None = Field(default=None, sa_column=Column(Text))
    webhook_state: str | None = Field(default=None, sa_column=Column(String(16)))
    webhook_next_at: datetime | None = _timestamp(nullable=True)


class TaskInput(SQLModel, table=True):
    """The uploaded image exactly as sent, with what validation learned about it."""

    __tablename__ = "task_inputs"

    task_id: uuid.UUID = Field(sa_column=_owned_by_task())
    content_type: str = Field(sa_column=Column(String(32), nullable=False))
    size_bytes: int
    width: int
    height: int
    sha256: str = Field(sa_column=Column(String(64), nullable=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Primitive(SQLModel, table=True):
    """One detected shape; coordinates normalised to the image, rotation in radians."""

    __tablename__ = "primitives"

    id: int | None = Field(default=None, primary_key=True)
    task_id: uuid.UUID = Field(sa_column=Column(ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True))
    ordinal: int
    class_id: int
    class_name: str = Field(sa_column=Column(String(64), nullable=False))
    x: float
    y: float
    width: float
    height: float
    rotation: float
    confidence: float


class SceneResult(SQLModel, table=True):
    """The scene a task's image shows, and which model versions produced the result."""

    __tablename__ = "scene_results"

    task_id: uuid.UUID = Field(sa_column=_owned_by_task())
    class_id: int
    class_name: str = Field(sa_column=Column(String(64), nullable=False))
    confidence: float
    top_k: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    detector_model: str = Field(sa_column=Column(String(128), nullable=False))
    classifier_model: str = Field(sa_column=Column(String(128), nullable=False))


class TaskChangeLog(SQLModel, table=True):
    """SQLite only: every change of a task, as the API shows the task, written by triggers
    (migration 0008) in commit order, for the change feed's poller to hand on one by one
    (`serve_app/task_changes.py`). PostgreSQL sends the same payloads by NOTIFY instead, so there
    the table stays empty."""

    __tablename__ = "task_change_log"
    __table_args__ = {"sqlite_autoincrement": True}  # numbers never reused: a gap means pruned rows

    seq: int | None = Field(default=None, primary_key=True)
    payload: str = Field(sa_column=Column(Text, nullable=False))


class LoginThrottle(SQLModel, table=True):
    """Recent failed logins for one username (known or not), to slow down password guessing.

    Keyed by a hash of the username, so any string a client sends fits and none is stored."""

    __tablename__ = "login_throttle"

    username_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    failures: int
    window_started_at: datetime = _timestamp()
    blocked_until: datetime | None = _timestamp(nullable=True)


class WebhookDelivery(SQLModel, table=True):
    """One attempt to deliver a task's webhook."""

    __tablename__ = "webhook_deliveries"

    id: int | None = Field(default=None, primary_key=True)
    task_id: uuid.UUID = Field(sa_column=Column(ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True))
    attempt: int
    attempted_at: datetime = _timestamp()
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    delivered: bool = False
