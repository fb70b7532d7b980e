"""Initial schema: users, tasks, task inputs, primitives, scene results.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _task_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=f"fk_{table}_task_id_tasks", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("hashed_password", sa.String(255), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("worker_id", sa.String(128), nullable=True),
        _timestamp("run_after"),
        _timestamp("lease_expires_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="ck_tasks_status"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_tasks_owner_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_tasks_owner_id_idempotency_key"),
    )
    op.create_index("ix_tasks_status_run_after", "tasks", ["status", "run_after"])
    op.create_index("ix_tasks_owner_id_created_at", "tasks", ["owner_id", "created_at"])
    op.create_index("ix_tasks_owner_id_status", "tasks", ["owner_id", "status"])
    op.create_table(
        "task_inputs",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _task_fk("task_inputs"),
        sa.PrimaryKeyConstraint("task_id", name="pk_task_inputs"),
    )
    op.create_table(
        "primitives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("class_name", sa.String(64), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=False) for name in ("x", "y", "width", "height", "rotation", "confidence")),
        _task_fk("primitives"),
        sa.PrimaryKeyConstraint("id", name="pk_primitives"),
    )
    op.create_index("ix_primitives_task_id", "primitives", ["task_id"])
    op.create_table(
        "scene_results",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("class_name", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("top_k", sa.JSON(), nullable=False),
        sa.Column("detector_model", sa.String(128), nullable=False),
        sa.Column("classifier_model", sa.String(128), nullable=False),
        _task_fk("scene_results"),
        sa.PrimaryKeyConstraint("task_id", name="pk_scene_results"),
    )


def downgrade() -> None:
    for table in ("scene_results", "primitives", "task_inputs", "tasks", "users"):
        op.drop_table(table)
