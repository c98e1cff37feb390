"""ORM models. The schema itself is owned by Alembic; these must agree with it.

`tests/test_migrations.py` compares them with the migrated database on every run, so a
change here without a revision (or the other way round) fails CI.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chad_memory.settings import get_settings
from chad_memory.vocabulary import MESSAGE_ROLES, RUN_STATUSES, STEP_STATUSES

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


EMBEDDING_DIM = get_settings().embedding_dim


def _in_list(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONB,
        datetime: DateTime(timezone=True),
        uuid.UUID: UUID(as_uuid=True),
        str: Text,
    }


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


def _created_at() -> Mapped[datetime]:
    return mapped_column(server_default=func.now(), nullable=False)


def _metadata() -> Mapped[dict[str, Any]]:
    return mapped_column(
        "metadata", JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )


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


class LLMCall(Base):
    __tablename__ = "llm_calls"

    id: Mapped[uuid.UUID] = _id()
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
    )
    step_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("steps.id", ondelete="SET NULL"))
    provider: Mapped[str | None]
    model: Mapped[str | None]
    prompt_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    total_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(18, 8))
    latency_ms: Mapped[float | None] = mapped_column(Double)
    status: Mapped[str] = mapped_column(nullable=False, server_default="succeeded")
    error: Mapped[str | None]
    request: Mapped[Any | None] = mapped_column(JSONB)
    response: Mapped[Any | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(_in_list("status", RUN_STATUSES), name="status"),
        CheckConstraint(
            "prompt_tokens >= 0 AND completion_tokens >= 0 AND total_tokens >= 0",
            name="tokens_nonnegative",
        ),
        CheckConstraint("cost_usd IS NULL OR cost_usd >= 0", name="cost_nonnegative"),
        Index("ix_llm_calls_run_id_created_at", "run_id", "created_at"),
        Index("ix_llm_calls_step_id", "step_id"),
    )


class Embedding(Base):
    __tablename__ = "embeddings"

    id: Mapped[uuid.UUID] = _id()
    actor: Mapped[str] = mapped_column(nullable=False)
    namespace: Mapped[str] = mapped_column(nullable=False, server_default="default")
    source_type: Mapped[str | None]
    source_id: Mapped[str | None]
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    content: Mapped[str | None]
    embedding: Mapped[list[float]] = mapped_column(Vector(EMBEDDING_DIM), nullable=False)
    metadata_: Mapped[dict[str, Any]] = _metadata()
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        Index("ix_embeddings_actor_namespace", "actor", "namespace"),
        Index("ix_embeddings_actor_source_id", "actor", "source_id"),
        Index("ix_embeddings_run_id", "run_id"),
        Index(
            "ix_embeddings_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
        Index(
            "ix_embeddings_embedding_ivfflat",
            "embedding",
            postgresql_using="ivfflat",
            postgresql_with={"lists": get_settings().ivfflat_lists},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
    )


class Thread(Base):
    """A conversation an actor keeps with an agent; runs and messages hang off it."""

    __tablename__ = "threads"

    id: Mapped[uuid.UUID] = _id()
    actor: Mapped[str] = mapped_column(nullable=False)
    title: Mapped[str] = mapped_column(nullable=False)
    agent_type: Mapped[str] = mapped_column(nullable=False)
    model: Mapped[str | None]
    provider: Mapped[str | None]
    metadata_: Mapped[dict[str, Any]] = _metadata()
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)

    __table_args__ = (
        Index("ix_threads_actor_updated_at_id", "actor", text("updated_at DESC"), text("id DESC")),
    )


class Message(Base):
    """One turn of a thread. Within a thread created_at strictly increases in append order
    (see ThreadStore.add_messages), so (created_at, id) is the conversation's order."""

    __tablename__ = "messages"

    id: Mapped[uuid.UUID] = _id()
    thread_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("threads.id", ondelete="CASCADE"), nullable=False
    )
    role: Mapped[str] = mapped_column(nullable=False)
    content: Mapped[str | None]
    tool_calls: Mapped[list[Any]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
    artifact_data: Mapped[Any | None] = mapped_column(JSONB)
    metadata_: Mapped[dict[str, Any]] = _metadata()
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(_in_list("role", MESSAGE_ROLES), name="role"),
        CheckConstraint("jsonb_typeof(tool_calls) = 'array'", name="tool_calls_array"),
        Index("ix_messages_thread_id_created_at_id", "thread_id", "created_at", "id"),
    )


class ApiKey(Base):
    """An actor's API key. Only the SHA-256 of the secret is stored, never the secret."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _id()
    actor: Mapped[str] = mapped_column(nullable=False)
    name: Mapped[str | None]
    # First characters of the secret, so people can tell their keys apart in `keys list`.
    prefix: Mapped[str] = mapped_column(nullable=False)
    key_hash: Mapped[str] = mapped_column(nullable=False, unique=True)
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_api_keys_actor", "actor"),)


class StoreItem(Base):
    """An item of a LangGraph store (chad_memory.integrations.langgraph), scoped to an actor.

    `prefix` is the namespace tuple joined with "." (LangGraph forbids "." in a label). The
    item's vectors are `embeddings` rows with source_type 'langgraph_store' and source_id
    equal to this row's id (see revision 008).
    """

    __tablename__ = "store_items"

    id: Mapped[str] = mapped_column(
        primary_key=True, server_default=text("gen_random_uuid()::text")
    )
    actor: Mapped[str] = mapped_column(nullable=False)
    prefix: Mapped[str] = mapped_column(Text(collation="C"), nullable=False)
    key: Mapped[str] = mapped_column(nullable=False)
    value: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    expires_at: Mapped[datetime | None]
    ttl_minutes: Mapped[float | None] = mapped_column(Double)

    __table_args__ = (
        CheckConstraint("ttl_minutes IS NULL OR ttl_minutes > 0", name="ttl_positive"),
        Index("uq_store_items_actor_prefix_key", "actor", "prefix", "key", unique=True),
        Index(
            "ix_store_items_value",
            "value",
            postgresql_using="gin",
            postgresql_ops={"value": "jsonb_path_ops"},
        ),
        Index(
            "ix_store_items_expires_at",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
    )
