"""Memory in words: one row per text in a namespace, and which runs wrote and read it.

- `embeddings.content_hash` (sha256 of `content`): a unique index on (actor, namespace,
  content_hash) lets a re-added text refresh its row instead of adding a twin. Rows
  written before this revision may hold the same text more than once; the newest of each
  such group gets the hash (re-adding the text refreshes it), the older ones keep a NULL
  hash and stay as they were: nothing is deleted. LangGraph store rows (source_type
  'langgraph_store') never get one: two items may hold the same text.
- `embeddings.step_id`: the step that wrote the memory (SET NULL when it goes).
- `memory_reads`: which memories a search made on behalf of a run returned, one row per
  (run, memory) with the best score and how many searches returned it.

The downgrade drops the new columns and table; every embeddings row stays.

Revision ID: 012_memory_in_words
Revises: 011_dashboard_signouts
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "012_memory_in_words"
down_revision: str | None = "011_dashboard_signouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = "sha256(convert_to(content, 'UTF8'))"


def upgrade() -> None:
    op.add_column("embeddings", sa.Column("content_hash", pg.BYTEA(), nullable=True))
    op.add_column("embeddings", sa.Column("step_id", pg.UUID(as_uuid=True), nullable=True))
    op.create_foreign_key(
        op.f("fk_embeddings_step_id_steps"),
        "embeddings",
        "steps",
        ["step_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("ix_embeddings_step_id", "embeddings", ["step_id"])
    op.execute(
        f"""
        UPDATE embeddings e SET content_hash = {HASH}
        FROM (
            SELECT DISTINCT ON (actor, namespace, {HASH}) id FROM embeddings
            WHERE content IS NOT NULL AND source_type IS DISTINCT FROM 'langgraph_store'
            ORDER BY actor, namespace, {HASH}, created_at DESC, id DESC
        ) newest
        WHERE e.id = newest.id
        """
    )
    op.create_index(
        "uq_embeddings_actor_namespace_content_hash",
        "embeddings",
        ["actor", "namespace", "content_hash"],
        unique=True,
        postgresql_where=sa.text("content_hash IS NOT NULL"),
    )
    op.create_table(
        "memory_reads",
        sa.Column("run_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("embedding_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("step_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("reads", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column(
            "first_read_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column(
            "last_read_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.PrimaryKeyConstraint("run_id", "embedding_id", name=op.f("pk_memory_reads")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_memory_reads_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["embedding_id"],
            ["embeddings.id"],
            name=op.f("fk_memory_reads_embedding_id_embeddings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["steps.id"],
            name=op.f("fk_memory_reads_step_id_steps"),
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_memory_reads_embedding_id", "memory_reads", ["embedding_id"])


def downgrade() -> None:
    op.drop_index("ix_memory_reads_embedding_id", table_name="memory_reads")
    op.drop_table("memory_reads")
    op.drop_index("uq_embeddings_actor_namespace_content_hash", table_name="embeddings")
    op.drop_index("ix_embeddings_step_id", table_name="embeddings")
    op.drop_constraint(op.f("fk_embeddings_step_id_steps"), "embeddings", type_="foreignkey")
    op.drop_column("embeddings", "step_id")
    op.drop_column("embeddings", "content_hash")
