"""Failed-login throttling table; index for the retention job.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("username_hash", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("username_hash", name="pk_login_throttle"),
    )
    op.create_index("ix_tasks_finished_at", "tasks", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_finished_at", table_name="tasks")
    op.drop_table("login_throttle")
