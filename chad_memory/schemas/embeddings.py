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
    # The step of `run_id` that wrote the memory.
    step_id: uuid.UUID | None = None
    content: SafeText | None = None
    # Omitted: the configured embedder embeds `content` (chad_memory.embedders).
    embedding: list[Number] | None = Field(default=None, min_length=1)
    metadata: JsonObject = Field(default_factory=dict)
    # The caller's name for the fact: a new memory with the same key in the namespace
    # supersedes the current one (closes it: valid_to) instead of deleting it.
    key: ShortText | None = None


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
    step_id: uuid.UUID | None = None
    content: str | None
    metadata: dict[str, Any] = _metadata_field
    created_at: datetime
    key: str | None = None
    # When the memory was true: from valid_from until valid_to (None: still current).
    valid_from: datetime | None = None
    valid_to: datetime | None = None


class NamespaceCount(BaseModel):
    namespace: str
    count: int


class SearchHit(EmbeddingRecord):
    # 1 - cosine distance: 1.0 is the same direction, 0 orthogonal, -1 opposite.
    score: float


class MemoryReadRecord(EmbeddingRecord):
    """A memory a run's searches returned: the best score they gave it, how many did."""

    score: float | None
    reads: int
    last_read_at: datetime


class MemoryReader(BaseModel):
    """A run that read a memory."""

    run_id: uuid.UUID
    step_id: uuid.UUID | None
    score: float | None
    reads: int
    first_read_at: datetime
    last_read_at: datetime


class RunMemory(BaseModel):
    """A run's memory both ways: what it wrote and what its searches returned."""

    written: list[EmbeddingRecord]
    read: list[MemoryReadRecord]


class MemoryDetail(BaseModel):
    """One memory with its provenance: the run and step that wrote it (on the record)
    and the runs that read it."""

    memory: EmbeddingRecord
    read_by: list[MemoryReader]
    # Every version under the memory's key, oldest first (empty without a key).
    history: list[EmbeddingRecord] = Field(default_factory=list)
