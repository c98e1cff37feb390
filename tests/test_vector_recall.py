"""Recall of PgVectorStore.search against an exact scan, on realistically hard vectors.

A few thousand clustered vectors (bench/datasets.py, fixed seed): unfiltered, a selective
filter (1% of rows) and a broad one (one actor owns everything), on a rebuilt IVFFLAT
index and on HNSW. Recall is asserted, never time; `make bench` measures speed.
"""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bench.datasets import clustered_vectors, exact_top_k, recall_at_k
from chad_memory import EmbeddingCreate, InvalidInputError, PgVectorStore, get_session_factory
from chad_memory.settings import get_settings
from chad_memory.vector_index import ReindexProgress, lists_for_rows

DIM = get_settings().embedding_dim
N = 3000
# Enough held-out queries (2,000 answers) that sampling noise stays well under the
# 0.01 between the target and a perfect index.
QUERIES = 200
K = 10
RARE_EVERY = 100  # namespace "rare" on 1% of rows


async def _load(store: PgVectorStore, base: np.ndarray) -> None:
    items = [
        EmbeddingCreate(
            actor="alice",
            namespace="rare" if i % RARE_EVERY == 0 else "default",
            content=str(i),
            embedding=v.tolist(),
        )
        for i, v in enumerate(base)
    ]
    for start in range(0, len(items), 1000):
        await store.add_embeddings(items[start : start + 1000])


async def _recall(
    store: PgVectorStore,
    queries: np.ndarray,
    truth: np.ndarray,
    actor: str | None = None,
    namespace: str | None = None,
) -> float:
    found: list[list[int]] = []
    for q in queries:
        hits = await store.search(q.tolist(), k=K, actor=actor, namespace=namespace)
        assert len(hits) == K  # k rows match, so k hits come back
        found.append([int(h.content or -1) for h in hits])
    return recall_at_k(found, truth)


async def test_recall_unfiltered_selective_broad_on_ivfflat_and_hnsw(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    data = clustered_vectors(N, DIM, queries=QUERIES, seed=11)
    # A low exact-scan threshold so the broad filter (3000 rows) takes the index path,
    # as it would on a large table; the 1% filter (30 rows) stays exact.
    store = PgVectorStore(session_factory, exact_scan_max_rows=300)
    await _load(store, data.base)
    rare = np.arange(N) % RARE_EVERY == 0
    truth = exact_top_k(data.base, data.queries, K)
    truth_rare = exact_top_k(data.base, data.queries, K, mask=rare)

    seen: list[ReindexProgress] = []
    info = await store.reindex(progress=seen.append)
    assert info.method == "ivfflat"
    assert info.lists == lists_for_rows(N)
    assert info.trained_rows == N
    assert not info.stale
    assert await _recall(store, data.queries, truth) >= 0.95
    assert await _recall(store, data.queries, truth, actor="alice") >= 0.95
    assert await _recall(store, data.queries, truth_rare, actor="alice", namespace="rare") >= 0.99
    # Nobody else's rows leak in, however broad the filter.
    assert await store.search(data.queries[0].tolist(), k=K, actor="bob") == []

    # Calibrated for the store's target: 0.99 here, so HNSW widens its beam to reach it.
    store.target_recall = 0.99
    info = await store.reindex(method="hnsw")
    assert info.calibration is not None
    assert info.calibration.recall >= 0.99
    assert info.method == "hnsw"
    assert info.name == "ix_embeddings_embedding_hnsw"
    assert info.m == 16
    assert not info.stale
    assert await _recall(store, data.queries, truth) >= 0.99
    assert await _recall(store, data.queries, truth, actor="alice") >= 0.99
    assert await _recall(store, data.queries, truth_rare, actor="alice", namespace="rare") >= 0.99


async def test_stale_index_detected_and_cleared_by_reindex(vector_store: PgVectorStore) -> None:
    data = clustered_vectors(1200, DIM, queries=5, seed=3)
    before = await vector_store.index_info()
    # Revision 001 builds IVFFLAT on an empty table: trained on nothing, but no rows yet.
    assert before.method == "ivfflat"
    assert before.trained_rows == 0
    assert not before.stale
    await _load(vector_store, data.base)
    stale = await vector_store.index_info()
    assert stale.rows == 1200
    assert stale.stale
    # A stale index on a small table is bypassed: search is exact, so the nearest is itself.
    hits = await vector_store.search(data.base[7].tolist(), k=3)
    assert hits[0].content == "7"
    fresh = await vector_store.reindex(lists=20)
    assert fresh.lists == 20
    assert fresh.trained_rows == 1200
    assert not fresh.stale
    assert fresh.as_dict()["stale"] is False
    # Only one vector index remains after a rebuild.
    again = await vector_store.reindex(method="hnsw")
    assert again.name == "ix_embeddings_embedding_hnsw"
    hits = await vector_store.search(data.base[7].tolist(), k=3)
    assert hits[0].content == "7"


async def test_reindex_rejects_bad_parameters(vector_store: PgVectorStore) -> None:
    with pytest.raises(InvalidInputError):
        await vector_store.reindex(lists=0)
    with pytest.raises(InvalidInputError):
        await vector_store.reindex(method="flat")  # type: ignore[arg-type]


async def test_cli_memory_reindex(database_url: str, vector_store: PgVectorStore) -> None:
    data = clustered_vectors(1100, DIM, queries=1, seed=5)
    await _load(vector_store, data.base)
    assert (await vector_store.index_info()).stale
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chad_memory.cli",
        "memory",
        "reindex",
        "--method",
        "hnsw",
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "stale" in text  # what it found is said before it starts
    assert "done: ix_embeddings_embedding_hnsw (hnsw, m=16" in text
    assert "calibration: hnsw.ef_search=" in text
    info = await vector_store.index_info()
    assert info.method == "hnsw"
    assert info.trained_rows == 1100
    assert info.calibration is not None
    status = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chad_memory.cli",
        "memory",
        "status",
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(status.communicate(), timeout=60)
    assert status.returncode == 0, out.decode()
    said = out.decode()
    assert "index: ix_embeddings_embedding_hnsw (hnsw, m=16, ef_construction=64)" in said
    assert "trained on 1100 rows" in said
    assert f"hnsw.ef_search={info.calibration.value} gives recall@10" in said


async def test_vectors_are_stored_inline(engine: AsyncEngine) -> None:
    # Revision 005: exact scoring of filtered rows must not fetch every vector from TOAST.
    async with engine.connect() as conn:
        storage = await conn.scalar(
            text(
                "SELECT attstorage FROM pg_attribute "
                "WHERE attrelid = 'embeddings'::regclass AND attname = 'embedding'"
            )
        )
    assert storage in ("m", b"m")  # "char" comes back as bytes from asyncpg


async def test_engine_without_binary_codec_still_works(database_url: str) -> None:
    # An engine the application built itself has no binary `vector` codec: text path.
    plain = create_async_engine(database_url)
    try:
        store = PgVectorStore(get_session_factory(plain))
        data = clustered_vectors(50, DIM, queries=1, seed=9)
        await _load(store, data.base)
        hits = await store.search(data.base[3].tolist(), k=2, actor="alice", min_score=-1.0)
        assert hits[0].content == "3"
        assert len(hits) == 2
    finally:
        await plain.dispose()
