"""Judgements: scores on runs, steps, LLM calls and threads, and the configs that type them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, CheckConstraint, Double, ForeignKey, Index, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from chad_memory.models.base import Base, _created_at, _id, _in_list, _metadata
from chad_memory.vocabulary import SCORE_SOURCES, SCORE_TARGETS, SCORE_TYPES

# Exactly the id columns of its target are set: a run's score names the run only; a
# step's or LLM call's also names their run (so a run's scores are one index read); a
# thread's names the thread only.
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
# A categorical score holds a label; numeric and boolean ones a number (true is 1).
VALUE_COLUMNS = (
    "(data_type = 'categorical' AND label IS NOT NULL AND value IS NULL)"
    " OR (data_type <> 'categorical' AND value IS NOT NULL AND label IS NULL)"
)


class ScoreConfig(Base):
    """What a score name means for one actor: its type, and its range or categories."""

    __tablename__ = "score_configs"

    id: Mapped[uuid.UUID] = _id()
    actor: Mapped[str] = mapped_column(nullable=False)
    name: Mapped[str] = mapped_column(nullable=False)
    data_type: Mapped[str] = mapped_column(nullable=False)
    min_value: Mapped[float | None] = mapped_column(Double)
    max_value: Mapped[float | None] = mapped_column(Double)
    categories: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    description: Mapped[str | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)

    __table_args__ = (
        CheckConstraint(_in_list("data_type", SCORE_TYPES), name="data_type"),
        Index("uq_score_configs_actor_name", "actor", "name", unique=True),
    )


class Score(Base):
    """One judgement of a target. Owned by the target's actor (copied here so lists and
    aggregates across runs read one table)."""

    __tablename__ = "scores"

    id: Mapped[uuid.UUID] = _id()
    actor: Mapped[str] = mapped_column(nullable=False)
    target_type: Mapped[str] = mapped_column(nullable=False)
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"))
    llm_call_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("llm_calls.id", ondelete="CASCADE")
    )
    thread_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("threads.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(nullable=False)
    data_type: Mapped[str] = mapped_column(nullable=False)
    value: Mapped[float | None] = mapped_column(Double)
    label: Mapped[str | None]
    source: Mapped[str] = mapped_column(nullable=False)
    comment: Mapped[str | None]
    author: Mapped[str | None]
    metadata_: Mapped[dict[str, Any]] = _metadata()
    idempotency_key: Mapped[str | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)

    __table_args__ = (
        CheckConstraint(_in_list("target_type", SCORE_TARGETS), name="target_type"),
        CheckConstraint(_in_list("data_type", SCORE_TYPES), name="data_type"),
        CheckConstraint(_in_list("source", SCORE_SOURCES), name="source"),
        CheckConstraint(TARGET_COLUMNS, name="target_columns"),
        CheckConstraint(VALUE_COLUMNS, name="value_columns"),
        Index(
            "uq_scores_actor_idempotency_key",
            "actor",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        # A run's scores (every target under it), and the cascade from runs.
        Index("ix_scores_run_id_name", "run_id", "name"),
        # Runs filtered by a run-level score: EXISTS per candidate run, index-only.
        Index(
            "ix_scores_run_id_name_value",
            "run_id",
            "name",
            "value",
            postgresql_include=["label"],
            postgresql_where=text("target_type = 'run'"),
        ),
        # Runs filtered by a score from the score side, the first-use type, aggregates.
        Index("ix_scores_actor_name_value", "actor", "name", "value"),
        Index("ix_scores_actor_created_at_id", "actor", text("created_at DESC"), text("id DESC")),
        Index("ix_scores_step_id", "step_id"),
        Index("ix_scores_llm_call_id", "llm_call_id"),
        Index("ix_scores_thread_id", "thread_id"),
    )
