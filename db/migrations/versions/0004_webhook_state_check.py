"""A task's webhook state is one of WebhookState's values (CHECK constraint).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Written out, not imported: a migration must keep meaning what it meant when it was written.
STATES = "'pending', 'retrying', 'delivered', 'failed'"


def upgrade() -> None:
    with op.batch_alter_table("tasks") as tasks:  # SQLite adds a CHECK by rebuilding the table
        tasks.create_check_constraint(op.f("ck_tasks_webhook_state"), f"webhook_state IS NULL OR webhook_state IN ({STATES})")


def downgrade() -> None:
    with op.batch_alter_table("tasks") as tasks:
        tasks.drop_constraint(op.f("ck_tasks_webhook_state"), type_="check")
