"""Scores and score configs; datasets with versioned items; experiments.

Only new tables: no existing row changes. The downgrade drops them, which loses the
scores, datasets and experiments recorded since (export them first); runs, steps and
everything older stay as they were.

Revision ID: 014_scores_datasets
Revises: 013_memory_in_time
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "014_scores_datasets"
down_revision: str | None = "013_memory_in_time"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here (not imported from the models), as every revision does.
SCORE_TYPES = "data_type IN ('numeric', 'categorical', 'boolean')"
SCORE_TARGETS = "target_type IN ('run', 'step', 'llm_call', 'thread')"
SCORE_SOURCES = "source IN ('human', 'api', 'evaluator')"
TARGET_COLUMNS = (
    "(target_type = 'run' AND run_id IS NOT NULL AND step_id IS NULL"
    " AND llm_call_id IS NULL AND thread_id IS NULL)"
    " OR (target_type = 'step' AND run_id IS NOT NULL AND step_id IS NOT NULL"
    " AND llm_call_id IS NULL AND thread_id IS NULL)"
    " OR (target_type = 'llm_call' AND run_id IS NOT NULL AND step_id IS NULL"
    " AND llm_call_id IS NOT NULL AND thread_id IS NULL)"
    " OR (target_type = 'thread' AND run_id IS NULL AND step_id IS NULL"
    " AND llm_call_id IS NULL AND thread_id IS NOT NULL)"
)
VALUE_COLUMNS = (
    "(data_type = 'categorical' AND label IS NOT NULL AND value IS NULL)"
    " OR (data_type <> 'categorical' AND value IS NOT NULL AND label IS NULL)"
)


def _uuid(name: str, nullable: bool = False) -> sa.Column[pg.UUID[object]]:
    return sa.Column(name, pg.UUID(as_uuid=True), nullable=nullable)


def _text(name: str, nullable: bool = True) -> sa.Column[sa.Text]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _ts(name: str) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _metadata() -> sa.Column[pg.JSONB]:
    return sa.Column("metadata", pg.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb"))


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def _scores() -> None:
    op.create_table(
        "score_configs",
        _uuid("id"),
        _text("actor", nullable=False),
        _text("name", nullable=False),
        _text("data_type", nullable=False),
        sa.Column("min_value", sa.Double()),
        sa.Column("max_value", sa.Double()),
        sa.Column("categories", pg.ARRAY(sa.Text())),
        _text("description"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_score_configs"),
        sa.CheckConstraint(SCORE_TYPES, name="ck_score_configs_data_type"),
    )
    op.create_index("uq_score_configs_actor_name", "score_configs", ["actor", "name"], unique=True)
    op.create_table(
        "scores",
        _uuid("id"),
        _text("actor", nullable=False),
        _text("target_type", nullable=False),
        _uuid("run_id", nullable=True),
        _uuid("step_id", nullable=True),
        _uuid("llm_call_id", nullable=True),
        _uuid("thread_id", nullable=True),
        _text("name", nullable=False),
        _text("data_type", nullable=False),
        sa.Column("value", sa.Double()),
        _text("label"),
        _text("source", nullable=False),
        _text("comment"),
        _text("author"),
        _metadata(),
        _text("idempotency_key"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_scores"),
        _fk("scores", "run_id", "runs", "CASCADE"),
        _fk("scores", "step_id", "steps", "CASCADE"),
        _fk("scores", "llm_call_id", "llm_calls", "CASCADE"),
        _fk("scores", "thread_id", "threads", "CASCADE"),
        sa.CheckConstraint(SCORE_TARGETS, name="ck_scores_target_type"),
        sa.CheckConstraint(SCORE_TYPES, name="ck_scores_data_type"),
        sa.CheckConstraint(SCORE_SOURCES, name="ck_scores_source"),
        sa.CheckConstraint(TARGET_COLUMNS, name="ck_scores_target_columns"),
        sa.CheckConstraint(VALUE_COLUMNS, name="ck_scores_value_columns"),
    )
    op.create_index(
        "uq_scores_actor_idempotency_key",
        "scores",
        ["actor", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index("ix_scores_run_id_name", "scores", ["run_id", "name"])
    op.create_index(
        "ix_scores_run_id_name_value",
        "scores",
        ["run_id", "name", "value"],
        postgresql_include=["label"],
        postgresql_where=sa.text("target_type = 'run'"),
    )
    op.create_index("ix_scores_actor_name_value", "scores", ["actor", "name", "value"])
    op.create_index(
        "ix_scores_actor_created_at_id",
        "scores",
        ["actor", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    for column in ("step_id", "llm_call_id", "thread_id"):
        op.create_index(f"ix_scores_{column}", "scores", [column])


def _datasets() -> None:
    op.create_table(
        "datasets",
        _uuid("id"),
        _text("actor", nullable=False),
        _text("name", nullable=False),
        _text("description"),
        _metadata(),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("0")),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
    )
    op.create_index("uq_datasets_actor_name", "datasets", ["actor", "name"], unique=True)
    op.create_table(
        "dataset_items",
        _uuid("id"),
        _uuid("item_id"),
        _uuid("dataset_id"),
        sa.Column("input", pg.JSONB()),
        sa.Column("expected_output", pg.JSONB()),
        _metadata(),
        _uuid("source_run_id", nullable=True),
        _uuid("source_step_id", nullable=True),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer()),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_items"),
        _fk("dataset_items", "dataset_id", "datasets", "CASCADE"),
        _fk("dataset_items", "source_run_id", "runs", "SET NULL"),
        _fk("dataset_items", "source_step_id", "steps", "SET NULL"),
    )
    op.create_index(
        "uq_dataset_items_dataset_id_item_id",
        "dataset_items",
        ["dataset_id", "item_id"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.create_index(
        "ix_dataset_items_dataset_id_valid_from", "dataset_items", ["dataset_id", "valid_from"]
    )
    op.create_index("ix_dataset_items_source_run_id", "dataset_items", ["source_run_id"])
    op.create_index("ix_dataset_items_source_step_id", "dataset_items", ["source_step_id"])
    op.create_table(
        "experiments",
        _uuid("id"),
        _text("actor", nullable=False),
        _text("name", nullable=False),
        _uuid("dataset_id"),
        sa.Column("dataset_version", sa.Integer(), nullable=False),
        _text("description"),
        _metadata(),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
        _fk("experiments", "dataset_id", "datasets", "CASCADE"),
    )
    op.create_index("uq_experiments_actor_name", "experiments", ["actor", "name"], unique=True)
    op.create_index("ix_experiments_dataset_id", "experiments", ["dataset_id"])


def upgrade() -> None:
    _scores()
    _datasets()


def downgrade() -> None:
    for table in (
        "experiments",
        "dataset_items",
        "datasets",
        "scores",
        "score_configs",
    ):
        op.drop_table(table)
