"""An index on runs(created_at, id) across actors, for retention.

`chad-memory prune` and the RETENTION_DAYS sweeper take the oldest runs first, a batch at
a time, usually for every actor at once. The per-actor index (actor, created_at DESC, id
DESC) cannot serve `WHERE created_at < cutoff ORDER BY created_at` without an actor, so
without this each batch would scan the table from the start.

Revision ID: 013
Revises: 005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "013"
down_revision: str | None = "005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_runs_created_at_id", "runs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_created_at_id", table_name="runs")
