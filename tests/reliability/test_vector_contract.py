"""Filtered vector search returns k hits whenever at least k rows match the filter.

pgvector applies WHERE after the IVFFLAT index scan: with a fixed number of probes a
selective filter can leave fewer than k candidates although many more rows match. The
oracle here is an exact scan in numpy over the rows that match the filter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory import EmbeddingCreate, PgVectorStore
from chad_memory.database import get_session_factory
from chad_memory.settings import get_settings
from tests.reliability.conftest import EngineMaker

DIM = get_settings().embedding_dim
ROWS = 3000


def _rows() -> tuple[np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(42)
    vectors = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    attrs = [
        {
            "actor": "alice" if i % 2 == 0 else "bob",
            "namespace": "rare" if i % 250 == 0 else "common",
            "source_id": f"doc-{i % 40}",
            "metadata": {"bucket": i % 10},
        }
        for i in range(ROWS)
    ]
    return vectors, attrs


def _matches(attrs: dict[str, Any], filters: dict[str, Any]) -> bool:
    for key, want in filters.items():
        if key == "metadata":
            if any(attrs["metadata"].get(k) != v for k, v in want.items()):
                return False
        elif attrs[key] != want:
            return False
    return True


FILTERS: list[dict[str, Any]] = [
    {"actor": "alice"},
    {"actor": "bob", "metadata": {"bucket": 3}},
    {"metadata": {"bucket": 7}},
    {"source_id": "doc-5"},
    {"actor": "alice", "source_id": "doc-12"},
    {"namespace": "rare"},
]


# Small tables look cheapest to scan whole, and an exact scan cannot lose rows; a large
# table would make the planner pick IVFFLAT. These settings make that choice here too.
INDEX_PATH = {"enable_seqscan": "off", "enable_bitmapscan": "off", "enable_sort": "off"}


@pytest.fixture
def vector_store(make_engine: EngineMaker) -> PgVectorStore:
    """A store whose connections plan filtered searches through the IVFFLAT index."""
    engine, _ = make_engine(engine_options={"connect_args": {"server_settings": INDEX_PATH}})
    return PgVectorStore(get_session_factory(engine))


@pytest.fixture
async def loaded(vector_store: PgVectorStore, engine: AsyncEngine) -> tuple[np.ndarray, list[Any]]:
    vectors, attrs = _rows()
    items = [
        EmbeddingCreate(content=str(i), embedding=v.tolist(), **a)
        for i, (v, a) in enumerate(zip(vectors, attrs, strict=True))
    ]
    for start in range(0, ROWS, 500):
        await vector_store.add_embeddings(items[start : start + 500])
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        # Train the IVFFLAT lists on real data (the migration built them on an empty table)
        # and give the planner statistics, so it really chooses the index.
        await conn.execute(text("REINDEX INDEX ix_embeddings_embedding_ivfflat"))
        await conn.execute(text("ANALYZE embeddings"))
    return vectors, attrs


async def test_filtered_search_returns_k_hits_when_k_rows_match(
    vector_store: PgVectorStore,
    engine: AsyncEngine,
    loaded: tuple[np.ndarray, list[dict[str, Any]]],
) -> None:
    """One test over every filter and k, so the 3,000 vectors are loaded once."""
    vectors, attrs = loaded
    failures: list[str] = []
    for k in (10, 50):
        for filters in FILTERS:
            problem = await _check(vector_store, vectors, attrs, filters, k)
            if problem:
                failures.append(f"k={k} filters={filters}: {problem}")
    assert not failures, "\n".join(failures)


async def test_the_index_path_is_the_one_exercised(
    engine: AsyncEngine, loaded: tuple[np.ndarray, list[dict[str, Any]]]
) -> None:
    """Guard for the test above: the planner does pick IVFFLAT for a filtered search."""
    vectors, _ = loaded
    literal = "[" + ",".join(f"{x:.6f}" for x in vectors[1]) + "]"
    async with engine.connect() as conn:
        for setting, value in INDEX_PATH.items():
            await conn.execute(text(f"SET {setting} = {value}"))
        plan = "\n".join(
            r[0]
            for r in await conn.execute(
                text(
                    "EXPLAIN SELECT id FROM embeddings WHERE metadata @> '{\"bucket\": 7}'"
                    f" ORDER BY embedding <=> '{literal}' LIMIT 50"
                )
            )
        )
    assert "ix_embeddings_embedding_ivfflat" in plan, plan


async def _check(
    vector_store: PgVectorStore,
    vectors: np.ndarray,
    attrs: list[dict[str, Any]],
    filters: dict[str, Any],
    k: int,
) -> str | None:
    rng = np.random.default_rng(k + len(filters))
    query = rng.standard_normal(DIM).astype(np.float32)
    matching = [i for i, a in enumerate(attrs) if _matches(a, filters)]
    exact = vectors[matching] @ (query / np.linalg.norm(query))  # cosine of unit vectors
    by_index = dict(zip(matching, exact, strict=True))

    hits = await vector_store.search(query.tolist(), k=k, **filters)

    found = [int(h.content or -1) for h in hits]
    if len(hits) != min(k, len(matching)):
        return f"{len(hits)} hits, {len(matching)} rows match"
    if not all(i in by_index for i in found):
        return "a hit does not match the filter"
    scores = [h.score for h in hits]
    if scores != sorted(scores, reverse=True):
        return "hits not sorted by score"
    if any(abs(h.score - float(by_index[i])) > 1e-4 for h, i in zip(hits, found, strict=True)):
        return "a score differs from the exact cosine similarity"
    if len(matching) <= k and set(found) != set(matching):
        return "fewer matching rows than k, yet not all of them returned"
    return None
