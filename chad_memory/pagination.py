"""Opaque keyset cursors on (created_at, id).

Offsets skip or repeat rows when new runs arrive between pages; a keyset cursor names the
last row seen, so the next page starts exactly after it whatever was inserted since.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from chad_memory.errors import InvalidInputError


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        at = datetime.fromisoformat(created_at)
        if at.tzinfo is None:
            raise ValueError("cursor timestamp has no timezone")
        return at, uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInputError("cursor is malformed; pass back a next_cursor unchanged") from exc
