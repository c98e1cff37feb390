"""Vector memory: embeddings with cosine similarity search on pgvector."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from chad_memory.errors import InvalidInputError
from chad_memory.models import Embedding
from chad_memory.schemas import EmbeddingCreate, EmbeddingRecord, SearchHit
from chad_memory.settings import get_settings
from chad_memory.stores.transactions import SessionFactory, transaction
from chad_memory.validation import check_embedding, check_json, check_text

MAX_K = 1000
MAX_BATCH = 10_000
_RECORD_COLUMNS = [c for c in Embedding.__table__.c if c.name != "embedding"]


def default_probes(lists: int) -> int:
    """pgvector's advice: probes around sqrt(lists) balances recall and speed."""
    return max(1, min(lists, round(math.sqrt(lists))))


class PgVectorStore:
    """Embeddings scoped by actor and namespace; every method is one transaction."""

    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        dim: int | None = None,
        probes: int | None = None,
    ) -> None:
        settings = get_settings()
        self._sessions = session_factory
        self.dim = dim or settings.embedding_dim
        self.probes = probes or settings.ivfflat_probes or default_probes(settings.ivfflat_lists)

    async def add_embedding(self, item: EmbeddingCreate) -> EmbeddingRecord:
        return (await self.add_embeddings([item]))[0]

    async def add_embeddings(self, items: Sequence[EmbeddingCreate]) -> list[EmbeddingRecord]:
        """Insert a batch in one statement; every vector is checked before any SQL runs."""
        if not items:
            return []
        if len(items) > MAX_BATCH:
            raise InvalidInputError(f"at most {MAX_BATCH} embeddings per batch, got {len(items)}")
        rows: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            data = item.model_dump(exclude={"embedding", "metadata"})
            data["id"] = data["id"] or uuid.uuid4()
            data["metadata_"] = item.metadata
            data["embedding"] = check_embedding(item.embedding, self.dim, f"embeddings[{i}]")
            rows.append(data)
        async with transaction(self._sessions, "add_embeddings") as session:
            result = await session.execute(
                pg_insert(Embedding).returning(*_RECORD_COLUMNS, sort_by_parameter_order=True), rows
            )
            return [EmbeddingRecord.model_validate(r) for r in result.mappings()]

    async def search(
        self,
        embedding: Sequence[float],
        *,
        k: int = 10,
        actor: str | None = None,
        namespace: str | None = None,
        source_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        """The k most similar embeddings by cosine similarity, best first.

        Filters run inside the index scan: pgvector 0.8's iterative scan keeps reading
        lists until k filtered rows are found, instead of filtering a fixed candidate set
        and returning fewer hits than exist.
        """
        query = check_embedding(embedding, self.dim, "query embedding")
        if not any(query):
            raise InvalidInputError("query embedding is all zeros; cosine similarity is undefined")
        if not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k must be between 1 and {MAX_K}")
        if min_score is not None and not math.isfinite(min_score):
            raise InvalidInputError("min_score must be a finite number")
        conds: list[ColumnElement[bool]] = []
        if actor is not None:
            conds.append(Embedding.actor == check_text(actor, "actor"))
        if namespace is not None:
            conds.append(Embedding.namespace == check_text(namespace, "namespace"))
        if source_id is not None:
            conds.append(Embedding.source_id == check_text(source_id, "source_id"))
        if metadata:
            conds.append(Embedding.metadata_.contains(check_json(metadata, "metadata")))

        distance = Embedding.embedding.cosine_distance(query)
        inner = (
            select(*_RECORD_COLUMNS, (1 - distance).label("score"))
            .where(*conds)
            .order_by(distance)
            .limit(k)
            .subquery()
        )
        # relaxed_order may return near-ties out of order; the outer sort restores it.
        stmt = select(inner).order_by(inner.c.score.desc())
        if min_score is not None:
            stmt = stmt.where(inner.c.score >= min_score)
        async with transaction(self._sessions, "search") as session:
            await session.execute(
                select(
                    func.set_config("ivfflat.probes", str(self.probes), True),
                    func.set_config("ivfflat.iterative_scan", "relaxed_order", True),
                )
            )
            result = await session.execute(stmt)
            return [SearchHit.model_validate(r) for r in result.mappings()]

    async def delete_by_source(self, source_id: str, *, actor: str | None = None) -> int:
        """Delete every embedding of a source (only the actor's, when given); returns the count."""
        conds = [Embedding.source_id == check_text(source_id, "source_id")]
        if actor is not None:
            conds.append(Embedding.actor == actor)
        async with transaction(self._sessions, "delete_by_source") as session:
            ids = (
                await session.scalars(delete(Embedding).where(*conds).returning(Embedding.id))
            ).all()
            return len(ids)
