"""Hybrid memory search: keyword and vector rankings of `embeddings` fused by reciprocal rank.

Kept apart from the store (chad_memory.stores.vectors) and the vector statements
(chad_memory.stores.vector_search): `hybrid_statement` is the one definition of the fused
statement, `hybrid_search` runs it in one transaction following the store's search
protocol (`PgVectorStore.prepare_search`), and the store's `hybrid_search` method calls it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    Float,
    Table,
    Text,
    bindparam,
    func,
    literal_column,
    null,
    select,
)

from chad_memory.errors import InvalidInputError
from chad_memory.schemas import HybridHit
from chad_memory.stores.statements import DriverStatement
from chad_memory.stores.transactions import driver_transaction, retried
from chad_memory.stores.vector_search import (
    TABLES,
    conditions,
    filter_params,
    json_params,
    prepare_statement,
    setting_params,
    valid_at,
)
from chad_memory.text_search import CONFIG, document_vector, tsquery_text
from chad_memory.validation import check_embedding
from chad_memory.vector_codec import has_binary_codec, vector_text
from chad_memory.vector_index import VectorIndexInfo

if TYPE_CHECKING:
    from chad_memory.stores.vectors import PgVectorStore

# Reciprocal rank fusion: a hit's score is the sum over the rankings it is in of
# 1 / (RRF_K + rank). 60 is the constant of the method's paper (Cormack et al., 2009): it
# keeps one list's first place from outweighing agreement between both lists.
RRF_K = 60
# Hits each ranking contributes to the fusion, at least (k more when k is larger).
FUSION_DEPTH = 50


def _distance(t: Table, exact: bool) -> ColumnElement[float]:
    query = bindparam("query", type_=t.c.embedding.type)
    if exact:  # a function the vector index cannot serve: an exact scan
        return func.cosine_distance(t.c.embedding, query, type_=Float)
    return t.c.embedding.op("<=>", return_type=Float)(query)


@lru_cache(maxsize=512)
def hybrid_statement(
    binary: bool,
    filters: tuple[str, ...],
    exact: bool,
    with_vector: bool,
    k: int,
    as_of: bool = False,
) -> DriverStatement:
    """Keyword and vector rankings fused by reciprocal rank, in one statement.

    Each ranking is the best `max(FUSION_DEPTH, k)` rows under the same filters and the
    same validity rule as vector search (current rows, valid_to IS NULL; or with `as_of`
    those valid at the bound `as_of` time): the keyword one by `ts_rank_cd` over rows
    matching `to_tsquery(tsq)` (through ix_embeddings_search), the vector one by cosine
    distance (the index or an exact scan, as `search_statement`). Their FULL JOIN sums
    1 / (RRF_K + rank) per row; a row in one ranking only has a null rank in the other.
    Without `with_vector` the keyword ranking alone is fused (a keyword search that
    reports the same fields).
    """
    t = TABLES[binary]
    where = [*conditions(t, filters), valid_at(t, as_of)]
    depth: ColumnElement[Any] = literal_column(str(max(FUSION_DEPTH, int(k))))
    tsq = func.to_tsquery(literal_column(f"'{CONFIG}'::regconfig"), bindparam("tsq", type_=Text))
    document: ColumnElement[Any] = literal_column(document_vector("embeddings", "embeddings."))
    kw_score = func.ts_rank_cd(document, tsq, type_=Float)
    keyword_top = (
        select(t.c.id, kw_score.label("kw_score"))
        .where(*where, document.op("@@")(tsq))
        .order_by(kw_score.desc(), t.c.id)
        .limit(depth)
        .subquery("keyword_top")
    )
    keyword = select(
        keyword_top.c.id,
        func.row_number()
        .over(order_by=(keyword_top.c.kw_score.desc(), keyword_top.c.id))
        .label("keyword_rank"),
    ).cte("keyword")
    # Literals, not parameters: the statement binds only the search's own values.
    rrf: ColumnElement[Any] = literal_column(f"{RRF_K}.0")
    one: ColumnElement[Any] = literal_column("1.0")
    zero: ColumnElement[Any] = literal_column("0.0")
    if with_vector:
        distance = _distance(t, exact)
        vector_top = (
            select(t.c.id, distance.label("distance"))
            .where(*where)
            .order_by(distance)
            .limit(depth)
            .subquery("vector_top")
        )
        vector = select(
            vector_top.c.id,
            func.row_number()
            .over(order_by=(vector_top.c.distance, vector_top.c.id))
            .label("vector_rank"),
            (literal_column("1") - vector_top.c.distance).label("similarity"),
        ).cte("vector")
        hit_id = func.coalesce(keyword.c.id, vector.c.id)
        fused = select(
            hit_id.label("hit_id"),
            keyword.c.keyword_rank,
            vector.c.vector_rank,
            vector.c.similarity,
            (
                func.coalesce(one / (rrf + keyword.c.keyword_rank), zero)
                + func.coalesce(one / (rrf + vector.c.vector_rank), zero)
            ).label("fused"),
        ).select_from(keyword.outerjoin(vector, keyword.c.id == vector.c.id, full=True))
    else:
        fused = select(
            keyword.c.id.label("hit_id"),
            keyword.c.keyword_rank,
            null().label("vector_rank"),
            null().label("similarity"),
            (one / (rrf + keyword.c.keyword_rank)).label("fused"),
        )
    top = (
        # Equal fused scores (two hits trading places between the rankings) go to the
        # more similar one: the vector ranking breaks ties, then the id.
        fused.order_by(
            literal_column("fused").desc(),
            literal_column("similarity").desc().nulls_last(),
            literal_column("hit_id"),
        )
        .limit(literal_column(str(int(k))))
        .subquery("top")
    )
    stmt = (
        select(
            *(c for c in t.c if c.name not in ("embedding", "content_hash")),
            top.c.fused.label("score"),
            top.c.keyword_rank,
            top.c.vector_rank,
            top.c.similarity,
        )
        .join_from(top, t, t.c.id == top.c.hit_id)
        .order_by(top.c.fused.desc(), top.c.similarity.desc().nulls_last(), t.c.id)
    )
    return DriverStatement.of(stmt, json_params(filters))


async def prepare_filtered(
    store: PgVectorStore,
    conn: asyncpg.Connection,
    known: VectorIndexInfo,
    params: dict[str, Any],
    filters: tuple[str, ...],
    k: int,
) -> bool:
    """`store.prepare_search` for a filtered search of `embeddings`: True when the vector
    ranking is an exact scan (no usable index, or a filter selective enough to score
    every row it matches)."""

    def prepare(gucs: dict[str, str]) -> tuple[str, list[Any]]:
        stmt = prepare_statement(filters, len(gucs))
        values = dict(params, cap=store.exact_scan_max_rows, **setting_params(gucs))
        return stmt.sql, stmt.args(values)

    exact, row = await store.prepare_search(conn, known, k, prepare)
    if filters and not exact:
        exact = int(row[2]) < store.exact_scan_max_rows
    return exact


async def hybrid_search(
    store: PgVectorStore,
    query_text: str,
    query_vector: Sequence[float] | None,
    *,
    k: int,
    actor: str | None,
    namespace: str | None,
    source_id: str | None,
    metadata: dict[str, Any] | None,
    run_id: uuid.UUID | None,
    step_id: uuid.UUID | None,
    as_of: datetime | None,
) -> list[HybridHit]:
    """`PgVectorStore.hybrid_search`: the k best embeddings valid now (or at `as_of`) for
    words and, when given, a vector. The keyword ranking (full-text match on `content`)
    and the vector ranking (cosine) are fused by reciprocal rank in one statement
    (`hybrid_statement`), filters applied inside both. Each hit says its keyword_rank,
    vector_rank (None where it was not in that ranking), similarity and fused `score`.
    Without a vector this is a keyword search over memory.

    `query_text` takes the search syntax of `chad_memory.text_search`; a text with no
    words is InvalidInputError. With `run_id` (one of `actor`'s runs; `step_id` one of
    its steps) the hits are recorded as that run's reads, scored by their cosine
    similarity (none for a hit the vector ranking did not hold).
    """
    if step_id is not None and run_id is None:
        raise InvalidInputError("a search's step_id needs its run_id")
    hits = await _hybrid(store, query_text, query_vector, k, actor, namespace, source_id,
                         metadata, as_of)  # fmt: skip
    if run_id is not None:
        reads = [h.model_copy(update={"score": h.similarity}) for h in hits]
        await store._record_reads(reads, run_id=run_id, step_id=step_id, actor=actor)
    return hits


@retried
async def _hybrid(
    store: PgVectorStore,
    query_text: str,
    query_vector: Sequence[float] | None,
    k: int,
    actor: str | None,
    namespace: str | None,
    source_id: str | None,
    metadata: dict[str, Any] | None,
    as_of: datetime | None,
) -> list[HybridHit]:
    tsq = tsquery_text(query_text)
    vector = None
    if query_vector is not None:
        vector = check_embedding(query_vector, store.dim, "query embedding")
    params, filters = filter_params(k, actor, namespace, source_id, metadata)
    known = store._info or await store.index_info()
    async with driver_transaction(store._db, "hybrid_search") as conn:
        exact = await prepare_filtered(store, conn, known, params, filters, k)
        binary = has_binary_codec(conn)
        stmt = hybrid_statement(binary, filters, exact, vector is not None, k, as_of is not None)
        params.update(tsq=tsq, as_of=as_of)
        if vector is not None:
            params["query"] = vector if binary else vector_text(vector)
        rows = await conn.fetch(stmt.sql, *stmt.args(params))
        return [HybridHit.model_validate(stmt.row(r)) for r in rows]
