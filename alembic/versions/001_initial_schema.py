"""Initial schema: runs, steps, artifacts, llm_calls and IVFFLAT-indexed embeddings.

Column types are written out here rather than imported from the models, so this revision
keeps meaning what it meant when it was written. The vector dimension (EMBEDDING_DIM) and
the IVFFLAT list count (IVFFLAT_LISTS) are read from settings when the revision runs and
are then fixed in the schema.

Revision ID: 001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql as pg

from chad_memory.settings import get_settings

revision: str = "001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_STATUS = "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')"
STEP_STATUS = "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')"


def _ts(name: str, nullable: bool = True, default: bool = False) -> sa.Column[sa.DateTime]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default else None,
    )


def _metadata() -> sa.Column[pg.JSONB]:
    return sa.Column("metadata", pg.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb"))


def _id() -> sa.Column[pg.UUID]:
    return sa.Column("id", pg.UUID(as_uuid=True), nullable=False)


def upgrade() -> None:
    settings = get_settings()
    dim = int(settings.embedding_dim)
    lists = int(settings.ivfflat_lists)

    available = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
    )
    if not available:
        raise RuntimeError(
            "this PostgreSQL server does not have the pgvector extension installed. Use an "
            "image or package with pgvector (pgvector/pgvector, postgresql-NN-pgvector), or "
            "unset DATABASE_URL to use the embedded server, which ships it."
        )
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    op.create_table(
        "runs",
        _id(),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("agent", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("trace_id", sa.Text()),
        sa.Column("idempotency_key", sa.Text()),
        sa.Column("thread_id", pg.UUID(as_uuid=True)),
        sa.Column("request_payload", pg.JSONB()),
        sa.Column("result", pg.JSONB()),
        sa.Column("error", sa.Text()),
        _metadata(),
        sa.Column(
            "tags", pg.ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'::text[]")
        ),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        _ts("started_at"),
        _ts("completed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("trace_id", name="uq_runs_trace_id"),
        sa.CheckConstraint(RUN_STATUS, name="ck_runs_status"),
    )
    op.create_index(
        "uq_runs_actor_idempotency_key",
        "runs",
        ["actor", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "ix_runs_actor_created_at_id",
        "runs",
        ["actor", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_runs_actor_status_created_at", "runs", ["actor", "status", sa.text("created_at DESC")]
    )
    op.create_index("ix_runs_actor_name", "runs", ["actor", "name"])
    op.create_index("ix_runs_thread_id", "runs", ["thread_id"])
    op.create_index("ix_runs_tags", "runs", ["tags"], postgresql_using="gin")

    op.create_table(
        "steps",
        _id(),
        sa.Column("run_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("parent_step_id", pg.UUID(as_uuid=True)),
        sa.Column("name", sa.Text()),
        sa.Column("type", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False, server_default="succeeded"),
        sa.Column("input", pg.JSONB()),
        sa.Column("output", pg.JSONB()),
        sa.Column("error", sa.Text()),
        _ts("started_at"),
        _ts("completed_at"),
        sa.Column("duration_ms", sa.Double()),
        _metadata(),
        _ts("created_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("id", name="pk_steps"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_steps_run_id_runs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_step_id"],
            ["steps.id"],
            name="fk_steps_parent_step_id_steps",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(STEP_STATUS, name="ck_steps_status"),
        sa.CheckConstraint("step_index >= 0", name="ck_steps_step_index_nonnegative"),
    )
    op.create_index("uq_steps_run_id_step_index", "steps", ["run_id", "step_index"], unique=True)
    op.create_index("ix_steps_parent_step_id", "steps", ["parent_step_id"])

    op.create_table(
        "artifacts",
        _id(),
        sa.Column("run_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("step_id", pg.UUID(as_uuid=True)),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text()),
        sa.Column("size_bytes", sa.BigInteger()),
        sa.Column("url", sa.Text()),
        sa.Column("sha256", sa.Text()),
        _metadata(),
        _ts("created_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_artifacts_run_id_runs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["step_id"], ["steps.id"], name="fk_artifacts_step_id_steps", ondelete="SET NULL"
        ),
        sa.CheckConstraint(
            "size_bytes IS NULL OR size_bytes >= 0", name="ck_artifacts_size_nonnegative"
        ),
    )
    op.create_index("ix_artifacts_run_id_created_at", "artifacts", ["run_id", "created_at"])
    op.create_index("ix_artifacts_step_id", "artifacts", ["step_id"])

    op.create_table(
        "llm_calls",
        _id(),
        sa.Column("run_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("step_id", pg.UUID(as_uuid=True)),
        sa.Column("provider", sa.Text()),
        sa.Column("model", sa.Text()),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("total_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Numeric(18, 8)),
        sa.Column("latency_ms", sa.Double()),
        sa.Column("status", sa.Text(), nullable=False, server_default="succeeded"),
        sa.Column("error", sa.Text()),
        sa.Column("request", pg.JSONB()),
        sa.Column("response", pg.JSONB()),
        _ts("created_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("id", name="pk_llm_calls"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_llm_calls_run_id_runs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["step_id"], ["steps.id"], name="fk_llm_calls_step_id_steps", ondelete="SET NULL"
        ),
        sa.CheckConstraint(RUN_STATUS, name="ck_llm_calls_status"),
        sa.CheckConstraint(
            "prompt_tokens >= 0 AND completion_tokens >= 0 AND total_tokens >= 0",
            name="ck_llm_calls_tokens_nonnegative",
        ),
        sa.CheckConstraint(
            "cost_usd IS NULL OR cost_usd >= 0", name="ck_llm_calls_cost_nonnegative"
        ),
    )
    op.create_index("ix_llm_calls_run_id_created_at", "llm_calls", ["run_id", "created_at"])
    op.create_index("ix_llm_calls_step_id", "llm_calls", ["step_id"])

    op.create_table(
        "embeddings",
        _id(),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("namespace", sa.Text(), nullable=False, server_default="default"),
        sa.Column("source_type", sa.Text()),
        sa.Column("source_id", sa.Text()),
        sa.Column("run_id", pg.UUID(as_uuid=True)),
        sa.Column("content", sa.Text()),
        sa.Column("embedding", Vector(dim), nullable=False),
        _metadata(),
        _ts("created_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("id", name="pk_embeddings"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_embeddings_run_id_runs", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_embeddings_actor_namespace", "embeddings", ["actor", "namespace"])
    op.create_index("ix_embeddings_actor_source_id", "embeddings", ["actor", "source_id"])
    op.create_index("ix_embeddings_run_id", "embeddings", ["run_id"])
    op.create_index(
        "ix_embeddings_metadata",
        "embeddings",
        ["metadata"],
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_embeddings_embedding_ivfflat",
        "embeddings",
        ["embedding"],
        postgresql_using="ivfflat",
        postgresql_with={"lists": lists},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )


def downgrade() -> None:
    op.drop_table("embeddings")
    op.drop_table("llm_calls")
    op.drop_table("artifacts")
    op.drop_table("steps")
    op.drop_table("runs")
    # The extension may be shared with other schemas in the same database; leave it.
