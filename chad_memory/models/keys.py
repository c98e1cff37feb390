"""API keys (only the SHA-256 of a key's secret is stored) and the dashboard sessions
that were signed out."""

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


class DashboardSignOut(Base):
    """A dashboard session ended by signing out. The session cookie is signed, not
    stored, so a copy taken before sign-out would stay valid until it expires; this row
    refuses it until then, and is deleted once the cookie would have expired anyway."""

    __tablename__ = "dashboard_signouts"

    sid: Mapped[str] = mapped_column(primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)

    __table_args__ = (Index("ix_dashboard_signouts_expires_at", "expires_at"),)
