"""Runs and what a run holds directly: its steps and its artifacts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from chad_memory.models.base import Base, _created_at, _id, _in_list, _metadata, _search_index
from chad_memory.vocabulary import RUN_STATUSES, STEP_STATUSES


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[uuid.UUID] = _id()
    actor: Mapped[str] = mapped_column(nullable=False)
    name: Mapped[str | None]
    agent: Mapped[str | None]
    status: Mapped[str] = mapped_column(nullable=False, server_default="pending")
    # Unique per actor (revision 006): one run per trace for each actor, and one actor's
    # trace ids say nothing about another's.
    trace_id: Mapped[str | None]
    idempotency_key: Mapped[str | None]
    # SHA-256 of the canonical request body that used idempotency_key (see revision 003).
    idempotency_fingerprint: Mapped[str | None]
    # A foreign key since revision 004; deleting the thread keeps the run, unlinked.
    thread_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("threads.id", ondelete="SET NULL")
    )
    request_payload: Mapped[Any | None] = mapped_column(JSONB)
    result: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[str | None]
    metadata_: Mapped[dict[str, Any]] = _metadata()
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, default=list, server_default=text("'{}'::text[]")
    )
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(_in_list("status", RUN_STATUSES), name="status"),
        UniqueConstraint("actor", "trace_id", name="uq_runs_actor_trace_id"),
        Index(
            "uq_runs_actor_idempotency_key",
            "actor",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_runs_actor_created_at_id", "actor", text("created_at DESC"), text("id DESC")),
        Index("ix_runs_actor_status_created_at", "actor", "status", text("created_at DESC")),
        # Retention takes the oldest runs of every actor first (revision 013).
        Index("ix_runs_created_at_id", "created_at", "id"),
        Index("ix_runs_actor_name", "actor", "name"),
        Index("ix_runs_thread_id", "thread_id"),
        Index("ix_runs_tags", "tags", postgresql_using="gin"),
        _search_index("runs"),
        Index(
            "ix_runs_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
    )


class Step(Base):
    __tablename__ = "steps"

    id: Mapped[uuid.UUID] = _id()
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
    )
    step_index: Mapped[int] = mapped_column(Integer, nullable=False)
    parent_step_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("steps.id", ondelete="SET NULL")
    )
    name: Mapped[str | None]
    type: Mapped[str | None]
    status: Mapped[str] = mapped_column(nullable=False, server_default="succeeded")
    input: Mapped[Any | None] = mapped_column(JSONB)
    output: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[str | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_ms: Mapped[float | None] = mapped_column(Double)
    metadata_: Mapped[dict[str, Any]] = _metadata()
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(_in_list("status", STEP_STATUSES), name="status"),
        CheckConstraint("step_index >= 0", name="step_index_nonnegative"),
        Index("uq_steps_run_id_step_index", "run_id", "step_index", unique=True),
        Index("ix_steps_parent_step_id", "parent_step_id"),
        _search_index("steps"),
    )


class Artifact(Base):
    __tablename__ = "artifacts"

    id: Mapped[uuid.UUID] = _id()
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
    )
    step_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("steps.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(nullable=False)
    content_type: Mapped[str | None]
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    url: Mapped[str | None]
    sha256: Mapped[str | None]
    metadata_: Mapped[dict[str, Any]] = _metadata()
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint("size_bytes IS NULL OR size_bytes >= 0", name="size_nonnegative"),
        Index("ix_artifacts_run_id_created_at", "run_id", "created_at"),
        Index("ix_artifacts_step_id", "step_id"),
    )
