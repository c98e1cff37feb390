"""Embeddings: what goes into the vector store, what comes back from it (rows without
their vectors, search hits with a score) and per-namespace counts.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from chad_memory.schemas.base import (
    Actor,
    Input,
    JsonObject,
    Number,
    Record,
    SafeText,
    ShortText,
    _metadata_field,
)


class EmbeddingFields(Input):
    namespace: ShortText = "default"
    source_type: ShortText | None = None
    source_id: ShortText | None = None
    run_id: uuid.UUID | None = None
    content: SafeText | None = None
    embedding: list[Number] = Field(min_length=1)
    metadata: JsonObject = Field(default_factory=dict)


class EmbeddingCreate(EmbeddingFields):
    id: uuid.UUID | None = None
    actor: Actor


class EmbeddingRecord(Record):
    """An embedding's row without the vector itself, which callers rarely want back."""

    id: uuid.UUID
    actor: str
    namespace: str
    source_type: str | None
    source_id: str | None
    run_id: uuid.UUID | None
    content: str | None
    metadata: dict[str, Any] = _metadata_field
    created_at: datetime


class NamespaceCount(BaseModel):
    namespace: str
    count: int


class SearchHit(EmbeddingRecord):
    # 1 - cosine distance: 1.0 is the same direction, 0 orthogonal, -1 opposite.
    score: float


class HybridHit(SearchHit):
    """A hit of hybrid (keyword + vector) memory search. `score` is the fused score: the
    sum of 1 / (60 + rank) over the rankings the hit is in. A rank is None when the hit
    was not among that ranking's best; `similarity` is the cosine similarity when the
    search had a vector."""

    keyword_rank: int | None
    vector_rank: int | None
    similarity: float | None
