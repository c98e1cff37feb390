"""Content from OTLP log records whose span has not arrived: pending_span_content.

POST /v1/logs attaches a GenAI event's messages to its span's step and LLM call. Logs
and traces are exported separately, so the event may come first: its content waits in
this table, keyed by (run_id, span_id), until the span's step is stored, which applies
and deletes it. Rows go with their run (ON DELETE CASCADE).

The downgrade drops the table: content still waiting there is lost with it (it belongs
to spans that never arrived).

Revision ID: 018_pending_span_content
Revises: 017_llm_call_models
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "018_pending_span_content"
down_revision: str | None = "017_llm_call_models"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _list(name: str) -> sa.Column[pg.JSONB]:
    return sa.Column(name, pg.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb"))


def upgrade() -> None:
    op.create_table(
        "pending_span_content",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("span_id", sa.Text(), nullable=False),
        _list("input"),
        _list("output"),
        _list("records"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name="fk_pending_span_content_run_id_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "span_id", name="pk_pending_span_content"),
    )


def downgrade() -> None:
    op.drop_table("pending_span_content")
