"""PostgreSQL wakes the dispatchers (channel `primscene_tasks`) from a trigger when tasks are
inserted, instead of the submitting request sending `NOTIFY` itself: one round trip fewer per
submit. The trigger is per statement, and PostgreSQL sends identical notifications of one
transaction once, so a batch of tasks still wakes each dispatcher once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Written out, not imported: a migration must keep meaning what it meant when it was written.
FUNCTION = """
CREATE FUNCTION primscene_notify_new_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('primscene_tasks', '');
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute("CREATE TRIGGER tasks_notify_new AFTER INSERT ON tasks FOR EACH STATEMENT EXECUTE FUNCTION primscene_notify_new_tasks()")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER tasks_notify_new ON tasks")
    op.execute("DROP FUNCTION primscene_notify_new_tasks()")
