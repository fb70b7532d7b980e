"""PostgreSQL tells listening ingress replicas of every change of a task's status or attempt
(channel `primscene_task_changes`), with the task as the API shows it, so that open event
streams need not poll. SQLite has no NOTIFY: there, one poller per replica looks instead.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Written out, not imported: a migration must keep meaning what it meant when it was written.
# The payload is the task's public fields and its owner; NOTIFY payloads must stay under 8000
# bytes, so a long error or callback URL is left out (`"partial": true`: the listener reads it).
FUNCTION = """
CREATE FUNCTION primscene_notify_task_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    task tasks;
    payload text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        payload := json_build_object('id', OLD.id, 'owner_id', OLD.owner_id, 'deleted', true)::text;
    ELSE
        task := NEW;
        payload := json_build_object(
            'id', task.id, 'owner_id', task.owner_id, 'status', task.status, 'attempts', task.attempts,
            'max_attempts', task.max_attempts, 'error', task.error, 'created_at', task.created_at,
            'started_at', task.started_at, 'finished_at', task.finished_at, 'callback_url', task.callback_url,
            'webhook_state', task.webhook_state
        )::text;
        IF octet_length(payload) > 7900 THEN
            payload := json_build_object('id', task.id, 'owner_id', task.owner_id, 'status', task.status,
                                         'attempts', task.attempts, 'partial', true)::text;
        END IF;
    END IF;
    PERFORM pg_notify('primscene_task_changes', payload);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute(
        "CREATE TRIGGER tasks_notify_insert_delete AFTER INSERT OR DELETE ON tasks "
        "FOR EACH ROW EXECUTE FUNCTION primscene_notify_task_change()"
    )
    op.execute(
        "CREATE TRIGGER tasks_notify_update AFTER UPDATE OF status, attempts ON tasks FOR EACH ROW "
        "WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.attempts IS DISTINCT FROM NEW.attempts) "
        "EXECUTE FUNCTION primscene_notify_task_change()"
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER tasks_notify_update ON tasks")
    op.execute("DROP TRIGGER tasks_notify_insert_delete ON tasks")
    op.execute("DROP FUNCTION primscene_notify_task_change()")
