"""Vector memory: embeddings with cosine similarity search on pgvector."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    bindparam,
    delete,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import defer

from chad_memory.database import Database, SessionFactory
from chad_memory.errors import ForbiddenError, InvalidInputError, NotFoundError
from chad_memory.models import Embedding
from chad_memory.schemas import EmbeddingCreate, EmbeddingRecord, NamespaceCount, Page, SearchHit
from chad_memory.stores.base import Store
from chad_memory.stores.limits import check_batch
from chad_memory.stores.paging import Keyset, keyset_page
from chad_memory.stores.transactions import retried, transaction
from chad_memory.validation import check_embedding, check_json, check_text
from chad_memory.vector_codec import CODEC_FLAG, BinaryVector
from chad_memory.vector_index import (
    Method,
    ProgressCallback,
    VectorIndexInfo,
    ef_search_for,
    inspect_index,
    probes_for_lists,
    rebuild_index,
)

logger = logging.getLogger(__name__)

MAX_K = 1000
# Filters matching fewer rows than this are scored exactly: in bench/ (100k x 1536) the
# 1,000 rows of a 1% filter took ~5 ms, about an IVFFLAT scan, with recall 1.0.
EXACT_SCAN_MAX_ROWS = 2000
# A stale IVFFLAT index on a table this small is bypassed for an exact scan.
STALE_EXACT_MAX_ROWS = 20_000
# Seconds between re-reads of which vector index exists (reindex() refreshes at once).
INDEX_INFO_TTL = 30.0
FILTERS = ("actor", "namespace", "source_id", "metadata")
EMBEDDINGS = Keyset("embeddings", (Embedding.created_at, Embedding.id), descending=True)


def _core_table(vector: Any) -> Table:
    """`embeddings` for Core statements, with the vector bound as `vector` (binary or text)."""
    return Table(
        "embeddings",
        MetaData(),
        *(
            Column(
                c.name,
                vector if c.name == "embedding" else c.type,
                key=c.key,
                # The key lets RETURNING ... sort_by_parameter_order batch the rows.
                primary_key=c.primary_key,
            )
            for c in Embedding.__table__.c
        ),
    )


# True: connections with chad_memory.vector_codec's binary codec; False: pgvector's text.
_TABLES = {True: _core_table(BinaryVector()), False: _core_table(Vector())}


@lru_cache(maxsize=512)
def _search_statement(
    binary: bool, filters: tuple[str, ...], exact: bool, floor: bool
) -> Select[Any]:
    """Built once per shape: building a subquery costs more than running it on small k."""
    t = _TABLES[binary]
    query = bindparam("query", type_=t.c.embedding.type)
    distance: ColumnElement[float] = (
        func.cosine_distance(t.c.embedding, query, type_=Float)
        if exact  # a function the vector index cannot serve: an exact scan
        else t.c.embedding.op("<=>", return_type=Float)(query)
    )
    inner = (
        select(*(c for c in t.c if c.name != "embedding"), (1 - distance).label("score"))
        .where(*_conditions(t, filters))
        .order_by(distance)
        # A literal LIMIT (k is an int checked above): with "LIMIT $n" the planner
        # guesses the row count and may pick another plan than for k=10.
        .limit(bindparam("k", type_=Integer, literal_execute=True))
        .subquery()
    )
    # relaxed_order may return near-ties out of order; the outer sort restores it.
    stmt = select(inner).order_by(inner.c.score.desc())
    if floor:
        stmt = stmt.where(inner.c.score >= bindparam("min_score", type_=Float))
    return stmt


@lru_cache(maxsize=64)
def _prepare_statement(filters: tuple[str, ...], settings: int) -> Select[Any]:
    """The index settings for this transaction and, when filtered, how many rows match."""
    t = _TABLES[False]
    columns: list[ColumnElement[Any]] = [
        func.set_config(bindparam(f"name{i}"), bindparam(f"value{i}"), True)
        for i in range(settings)
    ]
    if filters:
        matching = (
            select(literal(1))
            .select_from(t)
            .where(*_conditions(t, filters))
            .limit(bindparam("cap"))
        ).subquery()
        columns.insert(0, select(func.count()).select_from(matching).scalar_subquery())
    return select(*columns)


def _conditions(t: Table, filters: tuple[str, ...]) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    for name in filters:
        if name == "metadata":
            conds.append(t.c.metadata.contains(bindparam("f_metadata", type_=t.c.metadata.type)))
        else:
            conds.append(t.c[name] == bindparam(f"f_{name}"))
    return conds


def _binary(conn: AsyncConnection) -> bool:
    return bool(conn.info.get(CODEC_FLAG))


class PgVectorStore(Store):
    """Embeddings scoped by actor and namespace; every method is one transaction."""

    def __init__(
        self,
        session_factory: Database | SessionFactory,
        *,
        dim: int | None = None,
        probes: int | None = None,
        ef_search: int | None = None,
        exact_scan_max_rows: int = EXACT_SCAN_MAX_ROWS,
    ) -> None:
        super().__init__(session_factory)
        settings = self._db.settings
        self.dim = dim or settings.embedding_dim
        # None: chosen per search from the index present (IVFFLAT_PROBES overrides).
        self.probes = probes or settings.ivfflat_probes
        self.ef_search = ef_search
        self.exact_scan_max_rows = exact_scan_max_rows
        self._info: VectorIndexInfo | None = None
        self._info_at = 0.0

    @retried
    async def add_embedding(self, item: EmbeddingCreate) -> EmbeddingRecord:
        return (await self.add_embeddings([item]))[0]

    @retried
    async def add_embeddings(self, items: Sequence[EmbeddingCreate]) -> list[EmbeddingRecord]:
        """Insert a batch in one statement; every vector is checked before any SQL runs."""
        if not items:
            return []
        check_batch(items, "embeddings")
        rows: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            data = item.model_dump(exclude={"embedding"})
            data["id"] = data["id"] or uuid.uuid4()
            data["embedding"] = check_embedding(item.embedding, self.dim, f"embeddings[{i}]")
            rows.append(data)
        async with transaction(self._db, "add_embeddings") as session:
            conn = await session.connection()
            t = _TABLES[_binary(conn)]
            result = await conn.execute(
                pg_insert(t).returning(
                    *(c for c in t.c if c.name != "embedding"), sort_by_parameter_order=True
                ),
                rows,
            )
            return [EmbeddingRecord.model_validate(r) for r in result.mappings()]

    @retried
    async def index_info(self, *, refresh: bool = False) -> VectorIndexInfo:
        """The vector index search will use, re-read at most every INDEX_INFO_TTL seconds.

        A stale IVFFLAT index is logged (once per re-read) so operators see it in the logs
        as well as in /health.
        """
        now = time.monotonic()
        if refresh or self._info is None or now - self._info_at > INDEX_INFO_TTL:
            async with transaction(self._db, "index_info") as session:
                info = await inspect_index(await session.connection())
            if info.stale:
                logger.warning(
                    "vector index %s is stale: trained on %d rows, table has %d; "
                    "run `chad-memory memory reindex`",
                    info.name,
                    info.trained_rows,
                    info.rows,
                )
            self._info, self._info_at = info, now
        assert self._info is not None
        return self._info

    def _plan(self, info: VectorIndexInfo, k: int) -> tuple[bool, dict[str, str]]:
        """(exact?, index settings) for this index; exact when no usable index helps."""
        # Plan each search for its own filter values: a generic plan of the prepared
        # statement cannot tell an actor owning 1% of rows from one owning all of them.
        custom = {"plan_cache_mode": "force_custom_plan"}
        if info.method is None or not info.valid:
            return True, custom
        if info.method == "hnsw":
            return False, {
                "hnsw.ef_search": str(self.ef_search or ef_search_for(k)),
                "hnsw.iterative_scan": "relaxed_order",
                **custom,
            }
        lists = info.lists or 1
        probes = self.probes or probes_for_lists(lists)
        if info.stale:
            # Lists learnt from (almost) nothing: on a small table an exact scan is cheap and
            # right; on a large one widen the probes until someone reindexes.
            if info.rows <= STALE_EXACT_MAX_ROWS:
                return True, custom
            probes = max(probes, math.ceil(lists / 4))
        return False, {
            "ivfflat.probes": str(min(lists, probes)),
            "ivfflat.iterative_scan": "relaxed_order",
            **custom,
        }

    @retried
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

        A filter matching few rows (< exact_scan_max_rows) is answered by an exact scan of
        just those rows (found through the btree/GIN indexes): an approximate index would
        have to visit most of its lists to find them, and would miss some. Broader filters
        use the vector index with pgvector 0.8's iterative scan, which keeps reading lists
        (or the graph) until k rows pass the filter. Probes / ef_search come from the index
        actually present (see chad_memory.vector_index).
        """
        # Zero, underflowing and overflowing vectors are refused here as on add: their
        # cosine score would be NaN, sort first and pass any min_score.
        query = check_embedding(embedding, self.dim, "query embedding")
        if not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k must be between 1 and {MAX_K}")
        if min_score is not None and not math.isfinite(min_score):
            raise InvalidInputError("min_score must be a finite number")
        params: dict[str, Any] = {}
        if actor is not None:
            params["f_actor"] = check_text(actor, "actor")
        if namespace is not None:
            params["f_namespace"] = check_text(namespace, "namespace")
        if source_id is not None:
            params["f_source_id"] = check_text(source_id, "source_id")
        if metadata:
            params["f_metadata"] = check_json(metadata, "metadata")
        filters = tuple(f for f in FILTERS if f"f_{f}" in params)

        info = await self.index_info()
        exact, gucs = self._plan(info, k)
        async with transaction(self._db, "search") as session:
            conn = await session.connection()
            # One round trip: this transaction's settings and, when an index could serve a
            # filtered search, whether the filter is selective enough to score exactly.
            counted = filters if not exact else ()
            prep = dict(params, cap=self.exact_scan_max_rows)
            for i, (name, value) in enumerate(gucs.items()):
                prep[f"name{i}"], prep[f"value{i}"] = name, value
            row = (await conn.execute(_prepare_statement(counted, len(gucs)), prep)).one()
            if counted:
                exact = int(row[0]) < self.exact_scan_max_rows
            stmt = _search_statement(_binary(conn), filters, exact, min_score is not None)
            params.update(query=query, k=k)
            if min_score is not None:
                params["min_score"] = min_score
            result = await conn.execute(stmt, params)
            return [SearchHit.model_validate(r) for r in result.mappings()]

    @retried
    async def reindex(
        self,
        *,
        method: Method = "ivfflat",
        lists: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> VectorIndexInfo:
        """Rebuild the vector index on the rows present now (CONCURRENTLY: readers go on).

        IVFFLAT gets lists sized to the data (√rows) unless `lists` is given; `method="hnsw"`
        switches to HNSW (m=16, ef_construction=64), which never goes stale.
        """
        try:
            info = await rebuild_index(
                self._db.engine, method=method, lists=lists, progress=progress
            )
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc
        self._info, self._info_at = info, time.monotonic()
        return info

    @retried
    async def delete_by_source(self, source_id: str, *, actor: str | None = None) -> int:
        """Delete every embedding of a source (only the actor's, when given); returns the count."""
        conds = [Embedding.source_id == check_text(source_id, "source_id")]
        if actor is not None:
            conds.append(Embedding.actor == actor)
        async with transaction(self._db, "delete_by_source") as session:
            ids = (
                await session.scalars(delete(Embedding).where(*conds).returning(Embedding.id))
            ).all()
            return len(ids)

    @retried
    async def list_embeddings(
        self,
        actor: str,
        *,
        namespace: str | None = None,
        source_type: str | None = None,
        source_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EmbeddingRecord]:
        """An actor's embeddings (without their vectors), newest first, keyset-paged."""
        conds: list[ColumnElement[bool]] = [Embedding.actor == check_text(actor, "actor")]
        for column, value, name in (
            (Embedding.namespace, namespace, "namespace"),
            (Embedding.source_type, source_type, "source_type"),
            (Embedding.source_id, source_id, "source_id"),
        ):
            if value is not None:
                conds.append(column == check_text(value, name))
        stmt = select(Embedding).options(defer(Embedding.embedding)).where(*conds)
        async with transaction(self._db, "list_embeddings") as session:
            return await keyset_page(
                session,
                stmt,
                EMBEDDINGS,
                EmbeddingRecord,
                self._cursors,
                limit=limit,
                cursor=cursor,
            )

    @retried
    async def count_by_namespace(self, actor: str) -> list[NamespaceCount]:
        """How many embeddings the actor has in each namespace, by name."""
        stmt = (
            select(Embedding.namespace, func.count())
            .where(Embedding.actor == check_text(actor, "actor"))
            .group_by(Embedding.namespace)
            .order_by(Embedding.namespace)
        )
        async with transaction(self._db, "count_by_namespace") as session:
            rows = (await session.execute(stmt)).all()
        return [NamespaceCount(namespace=r[0], count=int(r[1])) for r in rows]

    @retried
    async def more_like(
        self,
        embedding_id: uuid.UUID,
        *,
        actor: str,
        k: int = 10,
        same_namespace: bool = True,
    ) -> tuple[EmbeddingRecord, list[SearchHit]]:
        """The stored embedding and the k others most like it: a `search` seeded by its
        vector, within the actor's rows and, by default, its namespace.

        NotFoundError for an unknown id, ForbiddenError for another actor's.
        """
        stmt = select(Embedding, Embedding.embedding.cast(Text)).options(defer(Embedding.embedding))
        async with transaction(self._db, "more_like") as session:
            row = (await session.execute(stmt.where(Embedding.id == embedding_id))).one_or_none()
            if row is None:
                raise NotFoundError(f"embedding {embedding_id} not found")
            stored, vector_text = row
            if stored.actor != actor:
                raise ForbiddenError(f"embedding {embedding_id} belongs to another actor")
            seed = EmbeddingRecord.model_validate(stored)
        vector = [float(x) for x in json.loads(vector_text)]
        hits = await self.search(
            vector,
            k=min(k + 1, MAX_K),
            actor=actor,
            namespace=seed.namespace if same_namespace else None,
        )
        return seed, [h for h in hits if h.id != embedding_id][:k]
