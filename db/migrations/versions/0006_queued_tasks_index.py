"""A partial index of the queued tasks in claiming order.

The claim takes the oldest queued tasks (`ORDER BY created_at, id LIMIT n`); through
`ix_tasks_status_run_after` PostgreSQL had to read and sort every queued task to find them (8 ms
with 20,000 queued, docs/scale.md). This index lists only queued tasks, oldest first, so a claim
reads about as many entries as it takes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
    op.create_index("ix_tasks_queued_created_at_id", "tasks", ["created_at", "id"], postgresql_where=QUEUED, sqlite_where=QUEUED)


def downgrade() -> None:
    op.drop_index("ix_tasks_queued_created_at_id", table_name="tasks")
