"""Which run wrote a memory, which runs read it, and its versions in time.

A memory records the run (and step) that wrote it on its own row; a search made on
behalf of a run records the memories it returned in `memory_reads`, one row per (run,
memory). Separate from the vector store, which only calls these inside its units of work.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chad_memory.errors import InvalidInputError
from chad_memory.models import Embedding, MemoryRead
from chad_memory.schemas import (
    EmbeddingCreate,
    EmbeddingRecord,
    MemoryReader,
    MemoryReadRecord,
    SearchHit,
)
from chad_memory.stores.base import check_run_owner, check_step_refs
from chad_memory.stores.paging import record_select

MAX_PROVENANCE_ROWS = 200


async def check_memory_steps(session: AsyncSession, items: Sequence[EmbeddingCreate]) -> None:
    """A memory's step must be a step of its run (so it needs the run)."""
    steps: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for i, item in enumerate(items):
        if item.step_id is None:
            continue
        if item.run_id is None:
            raise InvalidInputError(f"embeddings[{i}] has a step_id without its run_id")
        steps[item.run_id].add(item.step_id)
    for run_id, step_ids in steps.items():
        await check_step_refs(session, run_id, step_ids)


async def record_reads(
    session: AsyncSession,
    hits: Sequence[SearchHit],
    *,
    run_id: uuid.UUID,
    step_id: uuid.UUID | None,
    actor: str | None,
) -> None:
    """Note that `run_id` (the actor's) read these hits; a memory read again keeps its
    best score and counts the read."""
    await check_run_owner(session, run_id, actor)
    if step_id is not None:
        await check_step_refs(session, run_id, [step_id])
    if not hits:
        return
    stmt = pg_insert(MemoryRead)
    best: dict[uuid.UUID, float] = {}
    for hit in hits:
        best[hit.id] = max(hit.score, best.get(hit.id, hit.score))
    rows = [
        {"run_id": run_id, "embedding_id": eid, "step_id": step_id, "score": score}
        for eid, score in best.items()
    ]
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[MemoryRead.run_id, MemoryRead.embedding_id],
            set_={
                "reads": MemoryRead.reads + 1,
                "last_read_at": func.now(),
                "score": func.greatest(MemoryRead.score, stmt.excluded.score),
                "step_id": func.coalesce(stmt.excluded.step_id, MemoryRead.step_id),
            },
        ),
        rows,
    )


async def written_by_run(
    session: AsyncSession | AsyncConnection, run_id: uuid.UUID, limit: int
) -> list[EmbeddingRecord]:
    stmt = (
        record_select(Embedding, EmbeddingRecord)
        .where(Embedding.run_id == run_id)
        .order_by(Embedding.created_at.desc(), Embedding.id.desc())
        .limit(limit)
    )
    return [EmbeddingRecord.model_validate(r) for r in (await session.execute(stmt)).mappings()]


async def read_by_run(
    session: AsyncSession | AsyncConnection, run_id: uuid.UUID, limit: int
) -> list[MemoryReadRecord]:
    columns = record_select(Embedding, EmbeddingRecord).selected_columns
    stmt = (
        select(*columns, MemoryRead.score, MemoryRead.reads, MemoryRead.last_read_at)
        .join(MemoryRead, MemoryRead.embedding_id == Embedding.id)
        .where(MemoryRead.run_id == run_id)
        .order_by(MemoryRead.last_read_at.desc(), Embedding.id.desc())
        .limit(limit)
    )
    rows = (await session.execute(stmt)).mappings()
    return [MemoryReadRecord.model_validate(r) for r in rows]


async def readers_of(
    session: AsyncSession | AsyncConnection, embedding_id: uuid.UUID, limit: int
) -> list[MemoryReader]:
    stmt = (
        select(
            *(MemoryRead.__table__.c[name] for name in MemoryReader.model_fields),
        )
        .where(MemoryRead.embedding_id == embedding_id)
        .order_by(MemoryRead.last_read_at.desc(), MemoryRead.run_id.desc())
        .limit(limit)
    )
    rows: Any = (await session.execute(stmt)).mappings()
    return [MemoryReader.model_validate(r) for r in rows]


async def versions_of(
    session: AsyncSession | AsyncConnection, memory: EmbeddingRecord, limit: int
) -> list[EmbeddingRecord]:
    """Every version under the memory's key (its namespace, its actor), oldest first."""
    if memory.key is None:
        return []
    stmt = (
        record_select(Embedding, EmbeddingRecord)
        .where(
            Embedding.actor == memory.actor,
            Embedding.namespace == memory.namespace,
            Embedding.key == memory.key,
        )
        .order_by(Embedding.valid_from, Embedding.id)
        .limit(limit)
    )
    return [EmbeddingRecord.model_validate(r) for r in (await session.execute(stmt)).mappings()]
