"""Webhooks: a callback URL and delivery state per task, delivery attempts, a secret per user.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as users:
        users.add_column(sa.Column("webhook_secret", sa.String(64), nullable=True))
    with op.batch_alter_table("tasks") as tasks:
        tasks.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        tasks.add_column(sa.Column("webhook_state", sa.String(16), nullable=True))
        tasks.add_column(sa.Column("webhook_next_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_tasks_webhook_state_webhook_next_at", "tasks", ["webhook_state", "webhook_next_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_webhook_deliveries_task_id_tasks", ondelete="CASCADE"),
    )
    op.create_index("ix_webhook_deliveries_task_id", "webhook_deliveries", ["task_id"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_tasks_webhook_state_webhook_next_at", table_name="tasks")
    with op.batch_alter_table("tasks") as tasks:
        for column in ("webhook_next_at", "webhook_state", "callback_url"):
            tasks.drop_column(column)
    with op.batch_alter_table("users") as users:
        users.drop_column("webhook_secret")
