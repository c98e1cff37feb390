"""What OTLP log records said about spans that have not arrived yet.

A GenAI log event (a message, a choice, an inference's details) names its span; when the
span's step is not stored yet, its content waits here, keyed by run and span id, until
the span's export stores the step and applies it (chad_memory.stores.span_logs).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from chad_memory.models.base import Base, _created_at

_EMPTY_LIST = text("'[]'::jsonb")


class PendingSpanContent(Base):
    __tablename__ = "pending_span_content"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    span_id: Mapped[str] = mapped_column(primary_key=True)
    # Input messages and output messages / choices, in the order their events were sent.
    input: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default=_EMPTY_LIST)
    output: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default=_EMPTY_LIST)
    # The log records themselves, less what was read into input and output.
    records: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default=_EMPTY_LIST)
    created_at: Mapped[datetime] = _created_at()
