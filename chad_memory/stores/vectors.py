"""Vector memory: embeddings with cosine similarity search on pgvector."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    Text,
    delete,
    func,
    select,
)

from chad_memory.database import Database, SessionFactory
from chad_memory.embedders import Embedder
from chad_memory.errors import ForbiddenError, InvalidInputError, NotFoundError
from chad_memory.models import Embedding
from chad_memory.schemas import EmbeddingRecord, NamespaceCount, Page, SearchHit
from chad_memory.stores.paging import Keyset, keyset_page, record_select
from chad_memory.stores.text_memory import FROM_SETTINGS, TextMemory
from chad_memory.stores.transactions import driver_transaction, read, retried, transaction
from chad_memory.stores.vector_search import (
    FILTERS,
    identity,
    plan_search,
    prepare_statement,
    search_statement,
    setting_params,
    settings_statement,
    valid_at_condition,
)
from chad_memory.validation import check_as_of, check_embedding, check_json, check_text
from chad_memory.vector_calibration import (
    maintain,
    maintenance_due,
    rebuild_and_calibrate,
    recalibrate,
)
from chad_memory.vector_codec import (
    has_binary_codec,
    parse_vector_text,
    vector_text,
)
from chad_memory.vector_index import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    Method,
    ProgressCallback,
    VectorIndexInfo,
    info_from_state,
    inspect_index,
)

logger = logging.getLogger(__name__)

MAX_K = 1000
# Filters matching fewer rows than this are scored exactly: that many distances cost about
# what an index scan does, and an exact answer has nothing to miss (BENCHMARKS.md).
EXACT_SCAN_MAX_ROWS = 2000
# Seconds before a search tries again to start maintenance that found another process at
# it (or failed): the try costs a connection and a round trip, not worth paying per search.
MAINTENANCE_RETRY_S = 30.0
EMBEDDINGS = Keyset("embeddings", (Embedding.created_at, Embedding.id), descending=True)


# A stored embedding's record and its vector as text: the seed of `more_like`.
_SEED = record_select(Embedding, EmbeddingRecord).add_columns(
    Embedding.embedding.cast(Text).label("vector_text")
)


class PgVectorStore(TextMemory):
    """Embeddings scoped by actor and namespace; every method is one transaction.

    Searches use the setting the index's calibration chose (chad_memory.vector_calibration)
    and see a rebuild or calibration by any process on their next call. When the table
    outgrows what the index was calibrated on, a search starts the recalibration (or the
    IVFFLAT rebuild) as a background task; `close()` stops it.
    """

    def __init__(
        self,
        session_factory: Database | SessionFactory,
        *,
        dim: int | None = None,
        probes: int | None = None,
        ef_search: int | None = None,
        exact_scan_max_rows: int = EXACT_SCAN_MAX_ROWS,
        target_recall: float | None = None,
        auto_rebuild: bool | None = None,
        maintain_in_background: bool = True,
        embedder: Embedder | object | None = FROM_SETTINGS,
    ) -> None:
        super().__init__(session_factory, embedder=embedder)
        settings = self._db.settings
        self.dim = dim or settings.embedding_dim
        # None: the index's calibrated setting (IVFFLAT_PROBES overrides).
        self.probes = probes or settings.ivfflat_probes
        self.ef_search = ef_search
        self.exact_scan_max_rows = exact_scan_max_rows
        self.target_recall = target_recall or settings.vector_target_recall
        if not 0 < self.target_recall <= 1:
            raise InvalidInputError("target_recall must be in (0, 1]")
        self.auto_rebuild = settings.vector_auto_rebuild if auto_rebuild is None else auto_rebuild
        self.maintain_in_background = maintain_in_background
        self._info: VectorIndexInfo | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._maintenance_tried = -math.inf
        self._announced: tuple[object, ...] | None = None

    @retried
    async def index_info(self) -> VectorIndexInfo:
        """The vector index search uses, read now (rows counted).

        A stale IVFFLAT index or one below its target is logged, once per index state.
        """
        async with read(self._db, "index_info") as conn:
            info = await inspect_index(conn)
        self._remember(info)
        return info

    def _remember(self, info: VectorIndexInfo) -> None:
        self._info = info
        announce = (info.identity, info.stale)
        if announce == self._announced:
            return
        self._announced = announce
        if info.stale and not self.auto_rebuild:
            logger.warning(
                "vector index %s is stale: trained on %d rows, table has %d; a rebuild is due: "
                "run `chad-memory memory reindex` (VECTOR_AUTO_REBUILD is off)",
                info.name,
                info.trained_rows,
                info.rows,
            )
        elif info.calibration is not None and not info.calibration.met:
            logger.warning(
                "vector index %s reaches recall %.3f at its widest setting, below the target "
                "%.3f: rebuild it (more lists, or HNSW)",
                info.name,
                info.calibration.recall,
                info.calibration.target,
            )

    @property
    def known_index(self) -> VectorIndexInfo | None:
        """The index as this store last saw it (None before its first look)."""
        return self._info

    def observe(self, state: Any, rows: Any) -> VectorIndexInfo:
        """The index a preparing statement found (INDEX_STATE_SQL, ROWS_ESTIMATE_SQL),
        remembered; parsed again only when it changed. Other statements that search the
        embeddings (the LangGraph store's) report what they saw here too."""
        known = self._info
        if known is not None and known.oid is not None and state is not None:
            oid, note, valid = identity(state)
            if (oid, note, valid) == known.identity:
                info = known.with_rows(int(rows or 0))
                self._info = info
                return info
        elif known is not None and known.oid is None and state is None:
            info = known.with_rows(int(rows or 0))
            self._info = info
            return info
        info = info_from_state(state, int(rows or 0))
        self._remember(info)
        return info

    def _maybe_maintain(self, info: VectorIndexInfo) -> None:
        """Start the background recalibration or rebuild growth made due (one at a time)."""
        if not self.maintain_in_background:
            return
        if self._maintenance is not None and not self._maintenance.done():
            return
        if time.monotonic() - self._maintenance_tried < MAINTENANCE_RETRY_S:
            return
        if maintenance_due(info, target=self.target_recall, auto_rebuild=self.auto_rebuild):
            self._maintenance_tried = time.monotonic()
            self._maintenance = asyncio.create_task(self._maintain())

    async def _maintain(self) -> None:
        try:
            done = await maintain(
                self._db.maintenance_engine,
                target=self.target_recall,
                auto_rebuild=self.auto_rebuild,
            )
            if done is not None:
                self._maintenance_tried = -math.inf  # done: growth may call again at once
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a background job: log it, searches go on as they were
            logger.warning("vector index maintenance failed: %r", exc)

    async def wait_for_maintenance(self) -> None:
        """Wait for a background recalibration or rebuild this store started, if any."""
        if self._maintenance is not None:
            await asyncio.gather(self._maintenance, return_exceptions=True)

    async def close(self) -> None:
        """Stop this store's background maintenance (an interrupted build is cleaned up by
        the next one)."""
        task, self._maintenance = self._maintenance, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.close_embedder()

    def plan(self, info: VectorIndexInfo, k: int) -> tuple[bool, dict[str, str]]:
        """(exact?, index settings) of a k-hit search on this index (see `plan_search`)."""
        return plan_search(info, k, probes=self.probes, ef_search=self.ef_search)

    async def prepare_search(
        self,
        conn: asyncpg.Connection,
        known: VectorIndexInfo,
        k: int,
        prepare: Callable[[dict[str, str]], tuple[str, Sequence[Any]]],
    ) -> tuple[bool, asyncpg.Record]:
        """The search protocol every statement searching `embeddings` follows, in its
        transaction on `conn`: returns (exact?, the preparing statement's row).

        One round trip: `prepare(settings)` is a statement setting the index settings
        planned from the index seen last, and returning the index in use now (OID and
        note: a rebuild or calibration by any process shows here), the table's size and,
        after those, whatever the caller needs (how many rows its filter matches). Only
        when the index changed since this process last looked do the settings differ
        and cost a second round trip. Maintenance that growth made due starts here.
        """
        _, gucs = self.plan(known, k)
        sql, args = prepare(gucs)
        row = await conn.fetchrow(sql, *args)
        assert row is not None
        info = self.observe(row[0], row[1])
        exact, replanned = self.plan(info, k)
        if replanned != gucs:
            again = settings_statement(len(replanned))
            await conn.fetchrow(again.sql, *again.args(setting_params(replanned)))
        self._maybe_maintain(info)
        return exact, row

    async def search(
        self,
        embedding: Sequence[float] | None = None,
        *,
        query: str | None = None,
        k: int = 10,
        actor: str | None = None,
        namespace: str | None = None,
        source_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        min_score: float | None = None,
        run_id: uuid.UUID | None = None,
        step_id: uuid.UUID | None = None,
        as_of: datetime | None = None,
    ) -> list[SearchHit]:
        """The k most similar embeddings by cosine similarity, best first, among those valid
        now or, with `as_of`, at that time. The query is `embedding`, or `query` text embedded
        by the configured embedder. With `run_id` (one of `actor`'s runs; `step_id` one of its
        steps) the hits are recorded as that run's reads."""
        if step_id is not None and run_id is None:
            raise InvalidInputError("a search's step_id needs its run_id")
        if embedding is None:
            if query is None:
                raise InvalidInputError("a search needs `embedding` or `query` text")
            embedding = await self.embed_query(query)
        hits = await self._search(
            embedding,
            k=k,
            actor=actor,
            namespace=namespace,
            source_id=source_id,
            metadata=metadata,
            min_score=min_score,
            as_of=check_as_of(as_of),
        )
        if run_id is not None:
            await self._record_reads(hits, run_id=run_id, step_id=step_id, actor=actor)
        return hits

    @retried
    async def _search(
        self,
        embedding: Sequence[float],
        *,
        k: int,
        actor: str | None,
        namespace: str | None,
        source_id: str | None,
        metadata: dict[str, Any] | None,
        min_score: float | None,
        as_of: datetime | None,
    ) -> list[SearchHit]:
        """The search itself.

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

        known = self._info or await self.index_info()
        async with driver_transaction(self._db, "search") as conn:

            def prepare(gucs: dict[str, str]) -> tuple[str, list[Any]]:
                stmt = prepare_statement(filters, len(gucs))
                values = dict(params, cap=self.exact_scan_max_rows, **setting_params(gucs))
                return stmt.sql, stmt.args(values)

            exact, row = await self.prepare_search(conn, known, k, prepare)
            if filters and not exact:
                exact = int(row[2]) < self.exact_scan_max_rows
            binary = has_binary_codec(conn)
            stmt = search_statement(
                binary, filters, exact, min_score is not None, k, as_of is not None
            )
            params.update(
                query=query if binary else vector_text(query), min_score=min_score, as_of=as_of
            )
            rows = await conn.fetch(stmt.sql, *stmt.args(params))
            return [SearchHit.model_validate(stmt.row(r)) for r in rows]

    @retried
    async def reindex(
        self,
        *,
        method: Method = "ivfflat",
        lists: int | None = None,
        m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        progress: ProgressCallback | None = None,
    ) -> VectorIndexInfo:
        """Rebuild the vector index on the rows present now (CONCURRENTLY: readers go on),
        then calibrate it for the target recall; every process's next search uses it.

        IVFFLAT gets lists sized to the data (√rows) unless `lists` is given; `method="hnsw"`
        switches to HNSW (m, ef_construction), which never goes stale. Waits for a rebuild
        or calibration another process is running.
        """
        try:
            info = await rebuild_and_calibrate(
                self._db.maintenance_engine,
                target=self.target_recall,
                method=method,
                lists=lists,
                m=m,
                ef_construction=ef_construction,
                progress=progress,
            )
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc
        self._remember(info)
        return info

    async def calibrate(self) -> VectorIndexInfo:
        """Calibrate the index present now for the target recall (no rebuild)."""
        info = await recalibrate(self._db.maintenance_engine, target=self.target_recall)
        self._remember(info)
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
        valid_at: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EmbeddingRecord]:
        """An actor's embeddings (without their vectors), newest first, keyset-paged; with
        `valid_at`, only the versions valid at that time."""
        conds: list[ColumnElement[bool]] = [Embedding.actor == check_text(actor, "actor")]
        for column, value, name in (
            (Embedding.namespace, namespace, "namespace"),
            (Embedding.source_type, source_type, "source_type"),
            (Embedding.source_id, source_id, "source_id"),
        ):
            if value is not None:
                conds.append(column == check_text(value, name))
        when = check_as_of(valid_at)
        if when is not None:
            conds.append(valid_at_condition(Embedding.__table__, when))
        stmt = record_select(Embedding, EmbeddingRecord).where(*conds)
        async with read(self._db, "list_embeddings") as conn:
            return await keyset_page(
                conn,
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
        async with read(self._db, "count_by_namespace") as conn:
            rows = (await conn.execute(stmt)).all()
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
        stmt = _SEED.where(Embedding.id == embedding_id)
        async with read(self._db, "more_like") as conn:
            row = (await conn.execute(stmt)).mappings().one_or_none()
        if row is None:
            raise NotFoundError(f"embedding {embedding_id} not found")
        if row["actor"] != actor:
            raise ForbiddenError(f"embedding {embedding_id} belongs to another actor")
        seed = EmbeddingRecord.model_validate(row)
        vector = parse_vector_text(row["vector_text"])
        hits = await self.search(
            vector,
            k=min(k + 1, MAX_K),
            actor=actor,
            namespace=seed.namespace if same_namespace else None,
        )
        return seed, [h for h in hits if h.id != embedding_id][:k]
