"""The vector store's memory-in-words half: writing memories (text embedded by the
embedder, one row per text in a namespace) and provenance (which run wrote a memory,
which runs read it).

A base class of PgVectorStore (chad_memory.stores.vectors), kept apart so that the
search and index machinery there stays readable.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from chad_memory.database import Database, SessionFactory
from chad_memory.embedders import Embedder, embedder_from_settings, fit_dimension
from chad_memory.errors import InvalidInputError
from chad_memory.models import Embedding
from chad_memory.schemas import (
    EmbeddingCreate,
    EmbeddingRecord,
    MemoryDetail,
    RunMemory,
    SearchHit,
)
from chad_memory.stores.base import Store, check_owner_of, check_run_owner
from chad_memory.stores.limits import check_batch, check_page
from chad_memory.stores.memory_provenance import (
    check_memory_steps,
    read_by_run,
    readers_of,
    record_reads,
    versions_of,
    written_by_run,
)
from chad_memory.stores.memory_writes import (
    CLOSE_SUPERSEDED,
    close_params,
    memory_rows,
    records_in_order,
    upsert_statement,
    vectors_for,
)
from chad_memory.stores.paging import record_select
from chad_memory.stores.transactions import read, retried, transaction
from chad_memory.stores.vector_search import TABLES
from chad_memory.validation import check_embedding
from chad_memory.vector_codec import pooled_has_binary_codec

# The default `embedder`: the one the settings name, built when first needed.
FROM_SETTINGS = object()


class TextMemory(Store):
    dim: int

    def __init__(
        self,
        session_factory: Database | SessionFactory,
        *,
        embedder: Embedder | object | None = FROM_SETTINGS,
    ) -> None:
        super().__init__(session_factory)
        self._embedder = embedder
        self._owns_embedder = False

    @property
    def embedder(self) -> Embedder | None:
        """The embedder `content` and `query` text go through: the one given, else the one
        the settings name (built on first use), else None (callers send vectors)."""
        if self._embedder is FROM_SETTINGS:
            self._embedder = embedder_from_settings(self._db.settings)
            self._owns_embedder = self._embedder is not None
        return cast("Embedder | None", self._embedder)

    async def embed_query(self, query: str) -> list[float]:
        """`query` text as a vector of the table's dimension, by the configured embedder
        (InvalidInputError without one)."""
        embedder = self.embedder
        if embedder is None:
            raise InvalidInputError(
                "`query` text needs an embedder (EMBEDDER=none): send `embedding`, or set "
                "EMBEDDER to openai or local"
            )
        vector = fit_dimension(await embedder.embed_query(query), self.dim, embedder.name)
        return check_embedding(vector, self.dim, "the embedder's query vector")

    @retried
    async def _record_reads(
        self,
        hits: Sequence[SearchHit],
        *,
        run_id: uuid.UUID,
        step_id: uuid.UUID | None,
        actor: str | None,
    ) -> None:
        async with transaction(self._db, "record_reads") as session:
            await record_reads(session, hits, run_id=run_id, step_id=step_id, actor=actor)

    @retried
    async def run_memory(
        self, run_id: uuid.UUID, *, actor: str | None = None, limit: int = 50
    ) -> RunMemory:
        """A run's memory both ways, newest first: what it wrote, what its searches read."""
        check_page(limit, 0)
        async with read(self._db, "run_memory") as session:
            await check_run_owner(session, run_id, actor)
            return RunMemory(
                written=await written_by_run(session, run_id, limit),
                read=await read_by_run(session, run_id, limit),
            )

    @retried
    async def memory_detail(
        self, embedding_id: uuid.UUID, *, actor: str | None = None, limit: int = 50
    ) -> MemoryDetail:
        """One memory, who wrote it (its run_id and step_id) and the runs that read it."""
        check_page(limit, 0)
        stmt = record_select(Embedding, EmbeddingRecord).where(Embedding.id == embedding_id)
        async with read(self._db, "memory_detail") as session:
            row = (await session.execute(stmt)).mappings().one_or_none()
            check_owner_of("memory", embedding_id, None if row is None else row["actor"], actor)
            memory = EmbeddingRecord.model_validate(row)
            return MemoryDetail(
                memory=memory,
                read_by=await readers_of(session, embedding_id, limit),
                history=await versions_of(session, memory, limit),
            )

    async def add_embedding(self, item: EmbeddingCreate) -> EmbeddingRecord:
        return (await self.add_embeddings([item]))[0]

    async def add_embeddings(self, items: Sequence[EmbeddingCreate]) -> list[EmbeddingRecord]:
        """Write a batch in one statement, all or nothing: every vector is checked, and
        every missing one embedded from its `content`, before any SQL runs.

        A text already in the item's namespace (same actor) refreshes that row (vector,
        metadata, source and provenance) and answers with its id; see
        chad_memory.stores.memory_writes.
        """
        if not items:
            return []
        check_batch(items, "embeddings")
        vectors = await vectors_for(items, self.embedder, self.dim)
        return await self._write(items, vectors)

    @retried
    async def _write(
        self, items: Sequence[EmbeddingCreate], vectors: Sequence[list[float]]
    ) -> list[EmbeddingRecord]:
        rows, keys = memory_rows(items, vectors)
        async with transaction(self._db, "add_embeddings") as session:
            await check_memory_steps(session, items)
            closing = close_params(rows)
            if closing is not None:
                await session.execute(CLOSE_SUPERSEDED, closing)
            conn = await session.connection()
            t = TABLES[await pooled_has_binary_codec(conn)]
            result = await conn.execute(upsert_statement(t), rows)
            records = records_in_order(list(result.mappings()), keys)
        self._db.ingested("embeddings", len(rows))
        return records

    async def close_embedder(self) -> None:
        """Close the embedder this store built from the settings (next use rebuilds it)."""
        if self._owns_embedder:
            embedder = cast("Embedder", self._embedder)
            self._embedder, self._owns_embedder = FROM_SETTINGS, False
            await embedder.aclose()
