"""SQLite logs every change of a task (`task_change_log`), so that the change feed's poller hands
on each state however briefly it lasted, in order, as PostgreSQL's NOTIFY does (migration 0005).
Before, the poller compared each read with the last, and states shorter than its interval were
skipped. The payload is the same JSON: the task's public fields and its owner. The table exists
on PostgreSQL too (the models are the same on both) but no trigger fills it there.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Written out, not imported: a migration must keep meaning what it meant when it was written.
# SQLite stores the timestamps as naive UTC text: the payload gives them their zone.
TASK_JSON = """json_object(
    'id', NEW.id, 'owner_id', NEW.owner_id, 'status', NEW.status, 'attempts', NEW.attempts,
    'max_attempts', NEW.max_attempts, 'error', NEW.error, 'created_at', NEW.created_at || '+00:00',
    'started_at', NEW.started_at || '+00:00', 'finished_at', NEW.finished_at || '+00:00',
    'callback_url', NEW.callback_url, 'webhook_state', NEW.webhook_state
)"""
TRIGGERS = {
    "tasks_log_insert": f"AFTER INSERT ON tasks BEGIN INSERT INTO task_change_log (payload) VALUES ({TASK_JSON}); END",
    "tasks_log_update": (
        "AFTER UPDATE OF status, attempts ON tasks "
        "WHEN OLD.status IS NOT NEW.status OR OLD.attempts IS NOT NEW.attempts "
        f"BEGIN INSERT INTO task_change_log (payload) VALUES ({TASK_JSON}); END"
    ),
    "tasks_log_delete": (
        "AFTER DELETE ON tasks BEGIN INSERT INTO task_change_log (payload) "
        "VALUES (json_object('id', OLD.id, 'owner_id', OLD.owner_id, 'deleted', json('true'))); END"
    ),
}


def upgrade() -> None:
    op.create_table(
        "task_change_log",
        # AUTOINCREMENT: numbers are never reused, so a gap means rows were pruned.
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    if op.get_context().dialect.name != "sqlite":
        return
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("task_change_log")
