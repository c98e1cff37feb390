"""Vector memory: embeddings, and the items of LangGraph stores whose vectors are
embeddings rows.

The vector column's dimension and the IVFFLAT index's lists come from the settings when
this module is imported.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import BYTEA, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from chad_memory.models.base import Base, _created_at, _id, _metadata
from chad_memory.settings import get_settings

EMBEDDING_DIM = get_settings().embedding_dim


class Embedding(Base):
    __tablename__ = "embeddings"

    id: Mapped[uuid.UUID] = _id()
    actor: Mapped[str] = mapped_column(nullable=False)
    namespace: Mapped[str] = mapped_column(nullable=False, server_default="default")
    source_type: Mapped[str | None]
    source_id: Mapped[str | None]
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    step_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("steps.id", ondelete="SET NULL"))
    content: Mapped[str | None]
    # sha256 of content: one row per text in a namespace (NULL: not deduplicated, e.g.
    # LangGraph store rows and twins written before revision 011).
    content_hash: Mapped[bytes | None] = mapped_column(BYTEA)
    embedding: Mapped[list[float]] = mapped_column(Vector(EMBEDDING_DIM), nullable=False)
    metadata_: Mapped[dict[str, Any]] = _metadata()
    created_at: Mapped[datetime] = _created_at()
    # Revision 012: a caller's name for the fact; a new memory with the same key in the
    # namespace closes this one (valid_to) instead of deleting it.
    key: Mapped[str | None]
    valid_from: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    valid_to: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_interval"),
        Index("ix_embeddings_actor_namespace", "actor", "namespace"),
        Index("ix_embeddings_actor_source_id", "actor", "source_id"),
        Index("ix_embeddings_run_id", "run_id"),
        Index("ix_embeddings_step_id", "step_id"),
        Index(
            "uq_embeddings_actor_namespace_content_hash",
            "actor",
            "namespace",
            "content_hash",
            unique=True,
            postgresql_where=text("content_hash IS NOT NULL AND valid_to IS NULL"),
        ),
        Index(
            "uq_embeddings_actor_namespace_key",
            "actor",
            "namespace",
            "key",
            unique=True,
            postgresql_where=text("key IS NOT NULL AND valid_to IS NULL"),
        ),
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


class MemoryRead(Base):
    """A memory that a search made on behalf of a run returned: one row per (run, memory),
    with the best score any of the run's searches gave it and how many returned it."""

    __tablename__ = "memory_reads"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    embedding_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("embeddings.id", ondelete="CASCADE"))
    step_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("steps.id", ondelete="SET NULL"))
    score: Mapped[float | None] = mapped_column(Double)
    reads: Mapped[int] = mapped_column(Integer, server_default=text("1"), nullable=False)
    first_read_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    last_read_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)

    __table_args__ = (
        PrimaryKeyConstraint("run_id", "embedding_id"),
        Index("ix_memory_reads_embedding_id", "embedding_id"),
    )


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
