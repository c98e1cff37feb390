"""Hybrid memory search: keyword and vector rankings fused by reciprocal rank."""

from __future__ import annotations

import pytest

from chad_memory import EmbeddingCreate, InvalidInputError, PgVectorStore
from chad_memory.errors import EmbeddingDimensionError
from chad_memory.stores.vector_hybrid import RRF_K
from tests.search.conftest import DIM, unit


def rrf(*ranks: int) -> float:
    return sum(1 / (RRF_K + r) for r in ranks)


async def _memories(vectors: PgVectorStore) -> dict[str, object]:
    rows = await vectors.add_embeddings(
        [
            # Words only: the identifier, a vector far from the query's.
            EmbeddingCreate(actor="alice", content="ticket INC-5521 reopened", embedding=unit(5)),
            # Meaning only: the query's own vector, other words.
            EmbeddingCreate(actor="alice", content="the printer jammed", embedding=unit(0)),
            # Both: the identifier (twice: the first keyword rank) and a vector near the
            # query's.
            EmbeddingCreate(
                actor="alice",
                content="INC-5521: printer jammed twice, see INC-5521",
                embedding=[0.9, 0.1] + [0.0] * (DIM - 2),
            ),
            EmbeddingCreate(
                actor="alice", namespace="other", content="INC-5521 elsewhere", embedding=unit(0)
            ),
            EmbeddingCreate(actor="bob", content="bob INC-5521", embedding=unit(0)),
        ]
    )
    return {r.content or "": r.id for r in rows}


async def test_both_rankings_are_fused_and_reported(vector_store: PgVectorStore) -> None:
    ids = await _memories(vector_store)
    hits = await vector_store.hybrid_search(
        "INC-5521", unit(0), k=3, actor="alice", namespace="default"
    )
    both, words, meaning = hits  # 1/61 + 1/62 > 1/62 + 1/63 > 1/61
    assert both.id == ids["INC-5521: printer jammed twice, see INC-5521"]
    assert (both.keyword_rank, both.vector_rank) == (1, 2)
    assert both.score == pytest.approx(rrf(1, 2))
    assert meaning.id == ids["the printer jammed"]
    assert (meaning.keyword_rank, meaning.vector_rank) == (None, 1)
    assert meaning.similarity == pytest.approx(1.0)
    assert meaning.score == pytest.approx(rrf(1))
    assert words.id == ids["ticket INC-5521 reopened"]
    assert (words.keyword_rank, words.vector_rank) == (2, 3)
    assert words.score == pytest.approx(rrf(2, 3))
    # Filters sit inside both rankings: the other namespace and bob never rank.
    assert len(hits) == 3


async def test_words_alone_are_a_keyword_search(vector_store: PgVectorStore) -> None:
    ids = await _memories(vector_store)
    hits = await vector_store.hybrid_search("printer jammed", actor="alice")
    assert {h.id for h in hits} == {
        ids["the printer jammed"],
        ids["INC-5521: printer jammed twice, see INC-5521"],
    }
    assert [h.keyword_rank for h in hits] == [1, 2]
    assert all(h.vector_rank is None and h.similarity is None for h in hits)
    assert [h.score for h in hits] == pytest.approx([rrf(1), rrf(2)])
    other = await vector_store.hybrid_search("INC-5521", actor="alice", namespace="other")
    assert [h.id for h in other] == [ids["INC-5521 elsewhere"]]
    assert await vector_store.hybrid_search("nothing-like-this", actor="alice") == []


async def test_bad_input_is_refused(vector_store: PgVectorStore) -> None:
    with pytest.raises(InvalidInputError):
        await vector_store.hybrid_search("-only", actor="alice")
    with pytest.raises(EmbeddingDimensionError):
        await vector_store.hybrid_search("x", [1.0, 0.0], actor="alice")
    with pytest.raises(InvalidInputError, match="k must be"):
        await vector_store.hybrid_search("x", actor="alice", k=0)
