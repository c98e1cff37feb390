"""ChadMemoryStore: the LangGraph `BaseStore` class itself (batches, puts, reads).

Its SQL is in `statements`, the input rules and filter conditions in `filters`, the
driver plumbing in `driver` and the TTL sweeper in `ttl`: this module holds only how a
batch of LangGraph operations becomes those statements.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
)

from chad_memory.errors import InvalidInputError
from chad_memory.integrations.langgraph.driver import (
    _fetch,
    _item,
    _Params,
    _search_item,
    _VectorArg,
)
from chad_memory.integrations.langgraph.embed import CONFIGURED, ConfiguredEmbeddings
from chad_memory.integrations.langgraph.filters import (
    _bounded,
    _item_conditions,
    _namespace,
    _namespace_pattern,
    _ttl,
)
from chad_memory.integrations.langgraph.merging import MergedCalls
from chad_memory.integrations.langgraph.statements import (
    GET_SQL,
    INDEX_ONLY,
    ITEM_COLUMNS,
    LIVE,
    LOCK_KEYS,
    PUT_SQL,
    REFRESH_SQL,
    VECTOR_SOURCE,
)
from chad_memory.integrations.langgraph.ttl import _TTLSweeper
from chad_memory.integrations.loop_thread import LoopThread
from chad_memory.stores.transactions import SessionFactory, driver_transaction
from chad_memory.stores.vectors import EXACT_SCAN_MAX_ROWS, PgVectorStore
from chad_memory.validation import check_embedding, check_json, check_text
from chad_memory.vector_codec import has_binary_codec
from chad_memory.vector_codec import vector_text as _vector_text
from chad_memory.vector_index import INDEX_STATE_SQL, ROWS_ESTIMATE_SQL


class ChadMemoryStore(_TTLSweeper, BaseStore):
    """A LangGraph `BaseStore` whose items belong to one actor.

    Args:
        session_factory: from `chad_memory.get_session_factory(engine)`.
        actor: who owns the items; every read and write is scoped to it.
        index: LangGraph's `IndexConfig` (`dims`, `embed`, `fields`) to enable semantic
            search. `dims` must be the deployment's EMBEDDING_DIM: the vectors share the
            `embeddings` table and its index. `embed="chad-memory"` uses the embedder the
            settings configure (EMBEDDER); `dims` may then be left out.
        ttl: LangGraph's `TTLConfig` (`default_ttl` and `sweep_interval_minutes` in
            minutes, `refresh_on_read`).

    Async code uses the `a*` methods. The sync methods run the same coroutines on the
    event loop the store was first used from (so sync nodes of a graph run with
    `ainvoke` work), or, in a program without one, on a private loop thread; they
    refuse to run on the loop itself, where they would deadlock.
    """

    supports_ttl = True

    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        actor: str,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        exact_scan_max_rows: int = EXACT_SCAN_MAX_ROWS,
    ) -> None:
        if not isinstance(actor, str) or not actor:
            raise InvalidInputError("actor must be a non-empty string")
        self.actor = check_text(actor, "actor")
        self._sessions = session_factory
        self._vectors = PgVectorStore(session_factory, exact_scan_max_rows=exact_scan_max_rows)
        self.exact_scan_max_rows = exact_scan_max_rows
        self.ttl_config = ttl
        self.index_config = index
        self.embeddings: Embeddings | None = None
        self._fields: list[tuple[str, str | list[str]]] = []
        if index is not None:
            configured = index.get("embed") == CONFIGURED
            dims = index.get("dims", self._vectors.dim) if configured else index.get("dims")
            if dims != self._vectors.dim:
                raise InvalidInputError(
                    f"index dims is {dims}, but the embeddings table holds "
                    f"{self._vectors.dim}-d vectors (EMBEDDING_DIM)"
                )
            self.embeddings = (
                ConfiguredEmbeddings(self._vectors)
                if configured
                else ensure_embeddings(index.get("embed"))
            )
            fields = index.get("fields") or ["$"]
            if isinstance(fields, str):
                fields = [fields]
            self._fields = [(f, "$" if f == "$" else tokenize_path(f)) for f in fields]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._private: LoopThread | None = None
        self._private_lock = threading.Lock()
        self._merged = MergedCalls(self._run_batch)
        self._sweeper: asyncio.Task[None] | None = None
        self._stop_sweeping = asyncio.Event()

    @property
    def omit_expired(self) -> bool:
        """LangGraph's `TTLConfig.omit_expired` (default False): when set, reads skip
        expired items at once; otherwise an expired item is returned until swept."""
        return bool((self.ttl_config or {}).get("omit_expired", False))

    # Batches ---------------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Reads first (gets in one statement), then every put in one statement.

        Reads see the store as it was before this batch's puts, as in LangGraph's stores.
        Calls made on one loop in the same turn run as one batch (see `merging`).
        """
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        ops = list(ops)
        unknown = [
            op for op in ops if not isinstance(op, GetOp | PutOp | SearchOp | ListNamespacesOp)
        ]
        if unknown:
            raise InvalidInputError(f"unknown operation {type(unknown[0]).__name__}")
        return await self._merged(ops) if ops else []

    async def _run_batch(self, ops: list[Op]) -> list[Result]:
        results: list[Result] = [None] * len(ops)
        gets = [(i, op) for i, op in enumerate(ops) if isinstance(op, GetOp)]
        puts = [op for op in ops if isinstance(op, PutOp)]
        prepared_puts = await self._prepare_puts(puts) if puts else None
        if gets:
            await self._get(gets, results)
        # Identical searches and listings (concurrent callers asking the same) run once;
        # different ones at once, each on a pooled connection.
        reads = {repr(op): op for op in ops if isinstance(op, SearchOp | ListNamespacesOp)}
        found = dict(
            zip(
                reads, await asyncio.gather(*(self._read(op) for op in reads.values())), strict=True
            )
        )
        for i, op in enumerate(ops):
            if isinstance(op, SearchOp | ListNamespacesOp):
                results[i] = list(found[repr(op)])
        if prepared_puts is not None:
            await self._write(prepared_puts)
        return results

    async def _read(self, op: SearchOp | ListNamespacesOp) -> list[Any]:
        if isinstance(op, SearchOp):
            return await self._search(op)
        return await self._list_namespaces(op)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._loop
        if running is not None and (loop is None or running is loop):
            raise asyncio.InvalidStateError(
                "ChadMemoryStore's synchronous methods cannot run on the event loop; "
                "use abatch/aget/aput/asearch in async code"
            )
        if loop is None or loop.is_closed() or not loop.is_running():
            # Many threads may get here at once (a thread pool calling `put`): one private
            # loop thread for them all, or each would start its own.
            with self._private_lock:
                if self._private is None:
                    self._private = LoopThread("chad-memory-store")
                loop = self._loop = self._private.loop
        future: Future[list[Result]] = asyncio.run_coroutine_threadsafe(
            self.abatch(list(ops)), loop
        )
        return future.result()

    # Puts ------------------------------------------------------------------------------

    async def _prepare_puts(self, puts: Sequence[PutOp]) -> tuple[Any, ...]:
        """Validate, embed and lay out every put as the arrays of PUT_SQL.

        The last put of a key wins (as in LangGraph); nothing reaches SQL unless every
        op is valid and every vector has the right dimension.
        """
        latest: dict[tuple[str, str], PutOp] = {}
        for op in puts:
            prefix = _namespace(op.namespace)
            if not isinstance(op.key, str) or not op.key:
                raise InvalidInputError("key must be a non-empty string")
            latest[(prefix, check_text(op.key, "key"))] = op
        dropped: list[tuple[str, str]] = []
        written: list[tuple[str, str, str, float | None]] = []
        texts: list[tuple[str, str, str, str]] = []
        for (prefix, key), op in latest.items():
            if op.value is None:
                dropped.append((prefix, key))
                continue
            if not isinstance(op.value, dict):
                raise InvalidInputError(f"value of {key!r} must be a dict, or None to delete")
            value = check_json(op.value, f"value of {key!r}")
            written.append((prefix, key, json.dumps(value), _ttl(op.ttl)))
            if (
                op.index is not None
                and op.index is not False
                and not (
                    isinstance(op.index, list) and all(isinstance(f, str) and f for f in op.index)
                )
            ):
                raise InvalidInputError("index must be False, None or a list of field paths")
            if self.embeddings is None or op.index is False:
                continue
            fields = (
                self._fields
                if op.index is None
                else [(f, "$" if f == "$" else tokenize_path(f)) for f in op.index]
            )
            for path, tokens in fields:
                found = get_text_at_path(value, tokens)
                for n, content in enumerate(found):
                    name = f"{path}.{n}" if len(found) > 1 else path
                    texts.append((prefix, key, name, check_text(content, "embedded text")))
        vectors: list[Any] = []
        if texts:
            assert self.embeddings is not None
            embedded = await self.embeddings.aembed_documents([t[3] for t in texts])
            if len(embedded) != len(texts):
                raise InvalidInputError(
                    f"embed returned {len(embedded)} vectors for {len(texts)} texts"
                )
            vectors = [check_embedding(v, self._vectors.dim, "embedding") for v in embedded]
        return (
            self.actor,
            [d[0] for d in dropped],
            [d[1] for d in dropped],
            [w[0] for w in written],
            [w[1] for w in written],
            [w[2] for w in written],
            [w[3] for w in written],
            [t[0] for t in texts],
            [t[1] for t in texts],
            [t[2] for t in texts],
            [t[3] for t in texts],
            vectors,
        )

    async def _write(self, args: tuple[Any, ...]) -> None:
        """PUT_SQL on a pooled connection, after locking the batch's keys.

        PUT_SQL replaces a key's vectors with the ones its snapshot shows; two puts of one
        key racing would each miss the other's new vectors and leave both sets. So the
        keys' advisory locks (sorted: no deadlocks) are taken first, in their own
        statement: the PUT's snapshot is taken after any racing put has committed.
        Vectors go binary where the connection has chad-memory's codec, else as text.
        """
        prefixes, keys = args[1] + args[3], args[2] + args[4]
        async with driver_transaction(self._sessions, "store put") as conn:
            await conn.fetchval(LOCK_KEYS, self.actor, prefixes, keys)
            binary = has_binary_codec(conn)
            vectors = [_VectorArg(v) if binary else _vector_text(v) for v in args[-1]]
            await conn.execute(PUT_SQL, *args[:-1], vectors, prefixes, keys)

    # Reads -----------------------------------------------------------------------------

    async def _get(self, gets: Sequence[tuple[int, GetOp]], results: list[Result]) -> None:
        prefixes, keys, refresh = [], [], []
        for _, op in gets:
            prefixes.append(_namespace(op.namespace))
            keys.append(check_text(str(op.key), "key"))
            refresh.append(bool(op.refresh_ttl))
        rows = await _fetch(
            self._sessions,
            "store get",
            GET_SQL,
            self.actor,
            prefixes,
            keys,
            refresh,
            self.omit_expired,
        )
        found = {int(row["n"]) - 1: _item(row) for row in rows}
        for n, (i, _) in enumerate(gets):
            results[i] = found.get(n)

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        limit = _bounded(op.limit, "limit", 0)
        offset = _bounded(op.offset, "offset", 0)
        if limit == 0:
            return []
        if op.query is not None and not isinstance(op.query, str):
            raise InvalidInputError("query must be a string")
        if not op.query or self.embeddings is None:
            # Without a query (or an index) LangGraph lists matches, newest first.
            params = _Params(self.actor)
            where = " AND ".join(_item_conditions(op, params, self.omit_expired))
            order = "updated_at DESC, id"
            sql = (
                f"SELECT {ITEM_COLUMNS}, NULL::float8 AS score FROM store_items i WHERE {where} "
                f"ORDER BY i.{order.replace(', ', ', i.')} "
                f"LIMIT {params.add(limit)} OFFSET {params.add(offset)}"
            )
            if op.refresh_ttl:
                sql = REFRESH_SQL.format(search=sql, order=order)
            rows = await _fetch(self._sessions, "store search", sql, *params.values)
            return [_search_item(r) for r in rows]
        query = check_embedding(
            await self.embeddings.aembed_query(check_text(op.query, "query")),
            self._vectors.dim,
            "query embedding",
        )
        if not any(query):
            raise InvalidInputError("query embedding is all zeros; cosine similarity is undefined")
        return await self._vector_search(op, query, limit, offset)

    def _prepare(self, op: SearchOp, exact: bool, gucs: dict[str, str]) -> tuple[str, list[Any]]:
        """The preparing statement of `PgVectorStore.prepare_search`: the index settings,
        the index in use and the table's size, then how many items match, capped. When the
        plan uses the index and that count confirms it, the planner is made to walk the
        index (joined with store_items it would otherwise score every vector and sort)."""
        params = _Params(self.actor)
        columns = "".join(
            f", set_config({params.add(name)}, {params.add(value)}, true)"
            for name, value in gucs.items()
        )
        cap = params.add(self.exact_scan_max_rows)
        where = " AND ".join(_item_conditions(op, params, self.omit_expired))
        forced = "".join(
            f", set_config('{name}', CASE WHEN m.n >= {cap} THEN 'off' ELSE 'on' END, true)"
            for name in ([] if exact else INDEX_ONLY)
        )
        sql = (
            f"WITH m AS (SELECT count(*) AS n FROM (SELECT 1 FROM store_items i "
            f"WHERE {where} LIMIT {cap}) x) "
            f"SELECT {INDEX_STATE_SQL}, {ROWS_ESTIMATE_SQL}, m.n{forced}{columns} FROM m"
        )
        return sql, params.values

    async def _vector_search(
        self, op: SearchOp, query: list[float], limit: int, offset: int
    ) -> list[SearchItem]:
        """Exactly over the matching items when they are few, else through the vector index.

        PgVectorStore.search's rule and protocol (`prepare_search`): a filter matching
        fewer than exact_scan_max_rows items is scored exactly (found through store_items'
        indexes); a broader one walks the vector index with pgvector's iterative scan,
        which keeps going until enough rows pass the filter. Several vectors per item
        (several fields) count once, at their best score.
        """
        # Enough vector rows to fill limit + offset items even if each has every field.
        fetch = (limit + offset) * max(1, len(self._fields)) * 2 + 1
        vectors = self._vectors
        known = vectors.known_index or await vectors.index_info()
        first_exact, _ = vectors.plan(known, min(fetch, 1000))
        async with driver_transaction(self._sessions, "store search") as conn:
            exact, row = await vectors.prepare_search(
                conn,
                known,
                min(fetch, 1000),
                lambda gucs: self._prepare(op, first_exact, gucs),
            )
            exact = exact or int(row[2]) < self.exact_scan_max_rows
            binary = has_binary_codec(conn)
            params = _Params(self.actor, query if binary else _vector_text(query))
            where = " AND ".join(_item_conditions(op, params, self.omit_expired))
            if exact:
                sql = (
                    f"SELECT {ITEM_COLUMNS}, 1 - min(cosine_distance(e.embedding, $2)) AS score "
                    f"FROM store_items i JOIN embeddings e ON e.actor = i.actor "
                    f"AND e.source_type = '{VECTOR_SOURCE}' AND e.source_id = i.id "
                    f"WHERE {where} GROUP BY i.id"
                )
            else:
                sql = (
                    "SELECT DISTINCT ON (c.id) c.id, c.prefix, c.key, c.value, c.created_at, "
                    "c.updated_at, 1 - c.distance AS score FROM ("
                    f"SELECT {ITEM_COLUMNS}, e.embedding <=> $2 AS distance "
                    "FROM embeddings e JOIN store_items i ON i.id = e.source_id "
                    f"WHERE e.actor = $1 AND e.source_type = '{VECTOR_SOURCE}' AND {where} "
                    f"ORDER BY e.embedding <=> $2 LIMIT {int(fetch)}) c "
                    "ORDER BY c.id, c.distance"
                )
            order = "score DESC, id"
            sql = (
                f"SELECT * FROM ({sql}) s ORDER BY {order} "
                f"LIMIT {params.add(limit)} OFFSET {params.add(offset)}"
            )
            if op.refresh_ttl:
                sql = REFRESH_SQL.format(search=sql, order=order)
            rows = await conn.fetch(sql, *params.values)
        return [_search_item(r) for r in rows]

    async def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        limit = _bounded(op.limit, "limit", 0)
        offset = _bounded(op.offset, "offset", 0)
        params = _Params(self.actor)
        depth = op.max_depth
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, int) or depth < 1
        ):
            raise InvalidInputError("max_depth must be a positive integer")
        conds = ["i.actor = $1", LIVE] if self.omit_expired else ["i.actor = $1"]
        for condition in op.match_conditions or ():
            if condition.match_type not in ("prefix", "suffix"):
                raise InvalidInputError(f"unknown namespace match type {condition.match_type!r}")
            if condition.path:
                pattern = _namespace_pattern(condition.path, condition.match_type)
                conds.append(f"i.prefix ~ {params.add(pattern)}")
        label = (
            "i.prefix"
            if depth is None
            else f"array_to_string((string_to_array(i.prefix, '.'))[1:{params.add(depth)}], '.')"
        )
        sql = (
            f'SELECT DISTINCT {label} COLLATE "C" AS ns FROM store_items i '
            f"WHERE {' AND '.join(conds)} ORDER BY ns "
            f"LIMIT {params.add(limit)} OFFSET {params.add(offset)}"
        )
        rows = await _fetch(self._sessions, "store list_namespaces", sql, *params.values)
        return [tuple(r["ns"].split(".")) for r in rows]
