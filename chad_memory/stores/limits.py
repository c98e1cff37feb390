"""What every store accepts in one call, and how an input model becomes a row.

The bounds keep a single call from holding a transaction (and a pooled connection) for
arbitrarily long; the HTTP API sets tighter ones of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from chad_memory.errors import InvalidInputError
from chad_memory.request_caps import MAX_ITEMS_PER_REQUEST

# A run's child lists answer pages of the service's largest request.
MAX_PAGE_SIZE = MAX_ITEMS_PER_REQUEST
MAX_BATCH = 10_000
# PostgreSQL reads and discards every skipped row; past this, page with a cursor.
MAX_OFFSET = 1_000_000


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidInputError(
            f"offset must be between 0 and {MAX_OFFSET:,}; page further with a cursor"
        )


def check_batch(items: Sequence[Any], what: str) -> None:
    if len(items) > MAX_BATCH:
        raise InvalidInputError(f"at most {MAX_BATCH} {what} per batch, got {len(items)}")


def row_values(model: BaseModel) -> dict[str, Any]:
    """A validated input model as ORM column keys (`metadata` becomes `metadata_`), with
    an id drawn here when the caller gave none."""
    data: dict[str, Any] = model.model_dump()
    if "metadata" in data:
        data["metadata_"] = data.pop("metadata")
    if data.get("id") is None:
        data["id"] = uuid.uuid4()
    return data
