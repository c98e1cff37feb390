"""PgVectorStore against a real pgvector."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chad_memory import (
    EmbeddingCreate,
    EmbeddingDimensionError,
    InvalidInputError,
    PgVectorStore,
    PostgresStore,
    RunCreate,
)
from chad_memory.settings import get_settings

DIM = get_settings().embedding_dim


def unit_vectors(n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


async def test_search_finds_each_vector_itself_first(vector_store: PgVectorStore) -> None:
    vectors = unit_vectors(2000)
    items = [
        EmbeddingCreate(
            actor="alice",
            source_id=f"doc-{i // 10}",
            content=f"chunk {i}",
            embedding=v.tolist(),
            metadata={"parity": i % 2},
        )
        for i, v in enumerate(vectors)
    ]
    for start in range(0, len(items), 500):
        await vector_store.add_embeddings(items[start : start + 500])

    for i in (0, 17, 999, 1500, 1999):
        hits = await vector_store.search(vectors[i].tolist(), k=5, actor="alice")
        assert hits[0].content == f"chunk {i}"
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert len(hits) == 5


async def test_filters_actor_namespace_source_metadata(vector_store: PgVectorStore) -> None:
    vectors = unit_vectors(40, seed=3)
    await vector_store.add_embeddings(
        [
            EmbeddingCreate(
                actor="alice" if i < 30 else "bob",
                namespace="notes" if i % 3 == 0 else "default",
                source_id=f"s{i % 5}",
                embedding=v.tolist(),
                metadata={"kind": "even" if i % 2 == 0 else "odd", "i": i},
            )
            for i, v in enumerate(vectors)
        ]
    )
    q = vectors[0].tolist()
    bob = await vector_store.search(q, k=100, actor="bob")
    assert len(bob) == 10
    assert {h.actor for h in bob} == {"bob"}
    notes = await vector_store.search(q, k=100, actor="alice", namespace="notes")
    assert len(notes) == 10
    assert all(h.metadata["i"] % 3 == 0 for h in notes)
    src = await vector_store.search(q, k=100, actor="alice", source_id="s1")
    assert {h.source_id for h in src} == {"s1"}
    assert len(src) == 6
    even = await vector_store.search(q, k=100, actor="alice", metadata={"kind": "even"})
    assert len(even) == 15
    assert all(h.metadata["kind"] == "even" for h in even)
    close = await vector_store.search(q, k=100, actor="alice", min_score=0.5)
    assert [h.metadata["i"] for h in close] == [0]


async def test_delete_by_source_returns_count(vector_store: PgVectorStore) -> None:
    vectors = unit_vectors(6, seed=5)
    await vector_store.add_embeddings(
        [
            EmbeddingCreate(
                actor="alice" if i < 4 else "bob", source_id="doc", embedding=v.tolist()
            )
            for i, v in enumerate(vectors)
        ]
    )
    assert await vector_store.delete_by_source("doc", actor="bob") == 2
    assert await vector_store.delete_by_source("doc", actor="bob") == 0
    assert await vector_store.delete_by_source("doc") == 4


async def test_embedding_links_to_run_and_survives_its_deletion(
    vector_store: PgVectorStore, store: PostgresStore
) -> None:
    run = await store.save_run(RunCreate(actor="alice"))
    rec = await vector_store.add_embedding(
        EmbeddingCreate(actor="alice", run_id=run.id, embedding=unit_vectors(1)[0].tolist())
    )
    assert rec.run_id == run.id
    await store.delete_run(run.id)
    hits = await vector_store.search(unit_vectors(1)[0].tolist(), k=1)
    assert hits[0].id == rec.id
    assert hits[0].run_id is None


async def test_bad_vectors_are_rejected_before_sql(vector_store: PgVectorStore) -> None:
    good = unit_vectors(1)[0].tolist()
    with pytest.raises(EmbeddingDimensionError):
        await vector_store.add_embedding(EmbeddingCreate(actor="a", embedding=good[:-1]))
    with pytest.raises(EmbeddingDimensionError):
        await vector_store.search([*good, 0.0])
    nan = list(good)
    nan[3] = math.nan
    with pytest.raises(InvalidInputError):
        await vector_store.add_embedding(EmbeddingCreate(actor="a", embedding=nan))
    inf = list(good)
    inf[0] = math.inf
    with pytest.raises(InvalidInputError):
        await vector_store.search(inf)
    with pytest.raises(InvalidInputError):
        await vector_store.search([0.0] * DIM)
    with pytest.raises(InvalidInputError):
        await vector_store.search(good, k=0)
    # A bad vector in a batch means nothing from the batch is stored.
    with pytest.raises(EmbeddingDimensionError):
        await vector_store.add_embeddings(
            [
                EmbeddingCreate(actor="a", embedding=good),
                EmbeddingCreate(actor="a", embedding=[1.0]),
            ]
        )
    assert await vector_store.search(good, k=10) == []
