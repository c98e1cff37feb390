"""API keys: only the SHA-256 of a key's secret is stored."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index
from sqlalchemy.orm import Mapped, mapped_column

from chad_memory.models.base import Base, _created_at, _id


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
