"""Conversation history: threads and messages; runs.thread_id becomes a foreign key.

Before this revision runs.thread_id was a free uuid. A run may already name a thread that
no table holds; dropping that link would lose which runs belonged together, so the
upgrade creates one placeholder thread per distinct dangling id, with the same id, owned
by the actor of the earliest run that names it (see DATABASE_README.md). The downgrade
drops threads and messages; runs keep their thread_id values, as plain uuids again.

Revision ID: 004
Revises: 003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "004"
down_revision: str | None = "003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE_ROLE = "role IN ('user', 'assistant', 'system', 'tool')"

# One placeholder per dangling thread id. DISTINCT ON keeps the earliest run's actor and
# agent; the thread's span covers every run that named it.
PLACEHOLDER_THREADS = """
INSERT INTO threads (id, actor, title, agent_type, metadata, created_at, updated_at)
SELECT first.thread_id,
       first.actor,
       'Recovered thread',
       coalesce(first.agent, 'unknown'),
       jsonb_build_object('placeholder', true, 'created_by', 'migration 004'),
       span.created_at,
       span.updated_at
FROM (
    SELECT DISTINCT ON (thread_id) thread_id, actor, agent
    FROM runs
    WHERE thread_id IS NOT NULL
    ORDER BY thread_id, created_at, id
) AS first
JOIN (
    SELECT thread_id, min(created_at) AS created_at, max(updated_at) AS updated_at
    FROM runs
    WHERE thread_id IS NOT NULL
    GROUP BY thread_id
) AS span USING (thread_id)
"""


def _ts(name: str) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _metadata() -> sa.Column[pg.JSONB]:
    return sa.Column("metadata", pg.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb"))


def upgrade() -> None:
    # The lock ADD FOREIGN KEY takes anyway, taken first: no run with a new dangling
    # thread_id can slip in between the placeholders and the constraint. Reads go on.
    op.execute("LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE")

    op.create_table(
        "threads",
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("agent_type", sa.Text(), nullable=False),
        sa.Column("model", sa.Text()),
        sa.Column("provider", sa.Text()),
        _metadata(),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_threads"),
    )
    op.create_index(
        "ix_threads_actor_updated_at_id",
        "threads",
        ["actor", sa.text("updated_at DESC"), sa.text("id DESC")],
    )

    op.create_table(
        "messages",
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("thread_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("content", sa.Text()),
        sa.Column("tool_calls", pg.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("artifact_data", pg.JSONB()),
        _metadata(),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name="fk_messages_thread_id_threads", ondelete="CASCADE"
        ),
        sa.CheckConstraint(MESSAGE_ROLE, name="ck_messages_role"),
        sa.CheckConstraint(
            "jsonb_typeof(tool_calls) = 'array'", name="ck_messages_tool_calls_array"
        ),
    )
    op.create_index(
        "ix_messages_thread_id_created_at_id", "messages", ["thread_id", "created_at", "id"]
    )

    op.execute(PLACEHOLDER_THREADS)
    op.create_foreign_key(
        "fk_runs_thread_id_threads",
        "runs",
        "threads",
        ["thread_id"],
        ["id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    # runs.thread_id keeps its values; only the constraint goes.
    op.drop_constraint("fk_runs_thread_id_threads", "runs", type_="foreignkey")
    op.drop_table("messages")
    op.drop_table("threads")
