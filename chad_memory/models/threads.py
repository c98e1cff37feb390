"""Conversations: threads and their messages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from chad_memory.models.base import Base, _created_at, _id, _in_list, _metadata, _search_index
from chad_memory.vocabulary import MESSAGE_ROLES


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
        _search_index("threads"),
        Index(
            "ix_threads_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
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
        _search_index("messages"),
        Index(
            "ix_messages_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
    )
