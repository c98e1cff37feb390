"""LangGraph long-term memory (`BaseStore`) on chad-memory's tables.

`ChadMemoryStore(session_factory, actor=..., index=..., ttl=...)` is a
`langgraph.store.base.BaseStore`: pass it to `StateGraph.compile(store=...)` and nodes
read and write memories with `store.aput/aget/asearch`. Items live in `store_items`
(revision 008), one row per (actor, namespace, key); their vectors are rows of
`embeddings`, so search uses the vector index, binary codec and exact-or-index planning of
`PgVectorStore`. Two stores with different actors never see each other's items.

Where LangGraph's own Postgres store is wrong we differ, on purpose:
- `$gt/$gte/$lt/$lte` compare numbers as numbers and strings as strings (LangGraph's
  compares the text, so "10" < "9"); a value of another type never matches.
- `$ne` matches items that lack the key (as LangGraph's InMemoryStore does).
- Expired items are never returned, swept or not.
- `index=False` on an existing item drops its old vectors (LangGraph's keeps them, so a
  search can find the item by text it no longer holds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    InvalidNamespaceError,
    Item,
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
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from chad_memory.errors import InvalidInputError
from chad_memory.stores.transactions import SessionFactory, driver_transaction, transaction
from chad_memory.stores.vectors import EXACT_SCAN_MAX_ROWS, PgVectorStore
from chad_memory.validation import check_embedding, check_json, check_text
from chad_memory.vector_codec import CODEC_FLAG

logger = logging.getLogger(__name__)

__all__ = ["VECTOR_SOURCE", "ChadMemoryStore", "sweep_expired_items"]

# source_type and namespace of the `embeddings` rows that hold store items' vectors.
VECTOR_SOURCE = "langgraph_store"
MAX_LIMIT = 10_000
ORDERING = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
LIVE = "(i.expires_at IS NULL OR i.expires_at > now())"
# Planner switches turned off for an index search (see _vector_search).
INDEX_ONLY = ("enable_seqscan", "enable_hashjoin", "enable_mergejoin", "enable_sort")
ITEM_COLUMNS = "i.id, i.prefix, i.key, i.value, i.created_at, i.updated_at"

PUT_SQL = f"""
WITH dropped AS (
    DELETE FROM store_items s
    USING unnest($2::text[], $3::text[]) AS d(prefix, key)
    WHERE s.actor = $1 AND s.prefix = d.prefix AND s.key = d.key
    RETURNING s.id
), written AS (
    INSERT INTO store_items AS s (actor, prefix, key, value, expires_at, ttl_minutes)
    SELECT $1, w.prefix, w.key, w.value, now() + w.ttl * interval '1 minute', w.ttl
    FROM unnest($4::text[], $5::text[], $6::jsonb[], $7::float8[]) AS w(prefix, key, value, ttl)
    ON CONFLICT (actor, prefix, key) DO UPDATE
    SET value = EXCLUDED.value, updated_at = now(),
        expires_at = EXCLUDED.expires_at, ttl_minutes = EXCLUDED.ttl_minutes
    RETURNING s.id, s.prefix, s.key
), unindexed AS (
    -- Every touched key's old vectors (this statement's snapshot: before the upsert).
    DELETE FROM embeddings e
    USING unnest($13::text[], $14::text[]) AS t(prefix, key), store_items s
    WHERE s.actor = $1 AND s.prefix = t.prefix AND s.key = t.key
      AND e.actor = $1 AND e.source_type = '{VECTOR_SOURCE}' AND e.source_id = s.id
), indexed AS (
    INSERT INTO embeddings (id, actor, namespace, source_type, source_id, content, embedding,
                            metadata)
    SELECT gen_random_uuid(), $1, '{VECTOR_SOURCE}', '{VECTOR_SOURCE}', w.id, v.content,
           v.embedding, jsonb_build_object('field', v.field)
    FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::vector[])
         AS v(prefix, key, field, content, embedding)
    JOIN written w ON w.prefix = v.prefix AND w.key = v.key
)
SELECT 1
"""

GET_SQL = """
WITH wanted AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::bool[]) WITH ORDINALITY
        AS w(prefix, key, refresh, n)
), refreshed AS (
    UPDATE store_items s SET expires_at = now() + s.ttl_minutes * interval '1 minute'
    FROM wanted w
    WHERE s.actor = $1 AND s.prefix = w.prefix AND s.key = w.key AND w.refresh
      AND s.expires_at > now()
)
SELECT w.n, s.prefix, s.key, s.value, s.created_at, s.updated_at
FROM wanted w JOIN store_items s ON s.actor = $1 AND s.prefix = w.prefix AND s.key = w.key
WHERE s.expires_at IS NULL OR s.expires_at > now()
"""

# One transaction-scoped advisory lock per (actor, namespace, key) a batch of puts touches.
LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT "
    "hashtextextended(:actor || chr(31) || t.prefix || chr(31) || t.key, 8) AS h "
    "FROM unnest(CAST(:prefixes AS text[]), CAST(:keys AS text[])) AS t(prefix, key) "
    "ORDER BY h) locks"
)

REFRESH_SQL = """
WITH found AS ({search}), refreshed AS (
    UPDATE store_items s SET expires_at = now() + s.ttl_minutes * interval '1 minute'
    -- expires_at IS NOT NULL (set exactly when ttl_minutes is) can use the partial index.
    FROM found f WHERE s.id = f.id AND s.expires_at IS NOT NULL
)
SELECT * FROM found ORDER BY {order}
"""

SWEEP_SQL = f"""
WITH gone AS (
    DELETE FROM store_items WHERE expires_at <= now() {{actor}} RETURNING actor, id
), unindexed AS (
    DELETE FROM embeddings e USING gone
    WHERE e.actor = gone.actor AND e.source_type = '{VECTOR_SOURCE}' AND e.source_id = gone.id
)
SELECT count(*) FROM gone
"""


class _Params:
    """Positional parameters for asyncpg: `add` returns the placeholder for a value."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


class _VectorArg:
    """A vector inside a `vector[]` parameter: not iterable, so asyncpg does not take it
    for a nested array; chad_memory.vector_codec's encoder reads it through `tolist`."""

    __slots__ = ("values",)

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def tolist(self) -> list[float]:
        return self.values


def _vector_text(values: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def _namespace(namespace: Any, where: str = "namespace") -> str:
    """LangGraph's namespace rules (its own error class), plus chad-memory's text rules."""
    if not isinstance(namespace, tuple | list) or not namespace:
        raise InvalidNamespaceError(f"{where} must be a non-empty tuple of strings")
    for label in namespace:
        if not isinstance(label, str):
            raise InvalidNamespaceError(
                f"{where} label {label!r} in {tuple(namespace)} must be a string"
            )
        if not label:
            raise InvalidNamespaceError(f"{where} labels cannot be empty: {tuple(namespace)}")
        if "." in label:
            raise InvalidNamespaceError(
                f"{where} label {label!r} in {tuple(namespace)} cannot contain periods ('.')"
            )
        check_text(label, f"{where} label")
    if namespace[0] == "langgraph":
        raise InvalidNamespaceError(f'root label of a namespace cannot be "langgraph": {namespace}')
    return ".".join(namespace)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _namespace_pattern(path: Sequence[str], match_type: str) -> str:
    """A POSIX regex over the dot-joined namespace; `*` matches exactly one label."""
    labels = []
    for label in path:
        if not isinstance(label, str) or not label or "." in label:
            raise InvalidInputError(f"namespace {match_type} has an invalid label {label!r}")
        labels.append("[^.]+" if label == "*" else re.escape(label))
    body = r"\.".join(labels)
    return rf"(^|\.){body}$" if match_type == "suffix" else rf"^{body}(\.|$)"


def _bounded(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_LIMIT:
        raise InvalidInputError(f"{name} must be an integer between {low} and {MAX_LIMIT}")
    return value


def _ttl(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError("ttl must be a number of minutes")
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError("ttl must be a positive, finite number of minutes")
    return float(value)


def _item_conditions(op: SearchOp, params: _Params) -> list[str]:
    """WHERE conditions on store_items `i` for a search (the actor is always $1)."""
    conds = ["i.actor = $1", LIVE]
    if op.namespace_prefix:
        prefix = _namespace(op.namespace_prefix, "namespace_prefix")
        conds.append(
            f"(i.prefix = {params.add(prefix)} "
            f"OR i.prefix LIKE {params.add(_escape_like(prefix) + '.%')} ESCAPE '\\')"
        )
    if op.filter is None:
        return conds
    if not isinstance(op.filter, dict):
        raise InvalidInputError("filter must be an object of key: value or key: {$op: value}")
    for key, wanted in op.filter.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"filter key {key!r} must be a non-empty string")
        check_text(key, "filter key")
        operators = (
            wanted
            if isinstance(wanted, dict) and wanted and all(str(k).startswith("$") for k in wanted)
            else {"$eq": wanted}
        )
        for name, value in operators.items():
            conds.append(_condition(key, name, value, params))
    return conds


def _condition(key: str, name: str, value: Any, params: _Params) -> str:
    field = f"i.value -> {params.add(key)}"
    check_json(value, f"filter value for {key!r}")
    if name == "$eq":
        # Containment lets the GIN index on value narrow; equality keeps it exact.
        whole = params.add(json.dumps({key: value}))
        one = params.add(json.dumps(value))
        return f"(i.value @> CAST({whole} AS jsonb) AND {field} = CAST({one} AS jsonb))"
    if name == "$ne":
        return f"({field}) IS DISTINCT FROM CAST({params.add(json.dumps(value))} AS jsonb)"
    if name in ORDERING:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidInputError(f"{name} on {key!r} takes a number or a string")
        kind = "string" if isinstance(value, str) else "number"
        # jsonb orders numbers numerically and strings as text; the type check keeps a
        # string from comparing with a number by jsonb's type order.
        return (
            f"(jsonb_typeof({field}) = '{kind}' "
            f"AND {field} {ORDERING[name]} CAST({params.add(json.dumps(value))} AS jsonb))"
        )
    raise InvalidInputError(
        f"unsupported filter operator {name!r}; use $eq, $ne, $gt, $gte, $lt or $lte"
    )


def _loads(value: Any) -> Any:
    # SQLAlchemy's jsonb codec on these connections hands back the JSON text.
    return json.loads(value) if isinstance(value, str) else value


def _item(row: Any) -> Item:
    return Item(
        namespace=tuple(row["prefix"].split(".")),
        key=row["key"],
        value=_loads(row["value"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _search_item(row: Any) -> SearchItem:
    score = row["score"]
    return SearchItem(
        namespace=tuple(row["prefix"].split(".")),
        key=row["key"],
        value=_loads(row["value"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        score=None if score is None else float(score),
    )


async def _fetch(sessions: SessionFactory, what: str, sql: str, *args: Any) -> list[Any]:
    """One statement on a pooled asyncpg connection, in a transaction of its own."""
    async with driver_transaction(sessions, what) as driver:
        rows: list[Any] = await driver.fetch(sql, *args)
    return rows


async def _driver_fetch(conn: AsyncConnection, sql: str, args: Sequence[Any]) -> list[Any]:
    """`fetch` straight on asyncpg inside a `transaction()` block, which translates
    whatever the driver raises."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    rows: list[Any] = await driver.fetch(sql, *args)
    return rows


class _LoopThread:
    """An event loop on a daemon thread, for synchronous callers with no loop of their own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self.loop.run_forever, name="chad-memory-store", daemon=True
        )
        thread.start()


class ChadMemoryStore(BaseStore):
    """A LangGraph `BaseStore` whose items belong to one actor.

    Args:
        session_factory: from `chad_memory.get_session_factory(engine)`.
        actor: who owns the items; every read and write is scoped to it.
        index: LangGraph's `IndexConfig` (`dims`, `embed`, `fields`) to enable semantic
            search. `dims` must be the deployment's EMBEDDING_DIM: the vectors share the
            `embeddings` table and its index.
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
            dims = index.get("dims")
            if dims != self._vectors.dim:
                raise InvalidInputError(
                    f"index dims is {dims}, but the embeddings table holds "
                    f"{self._vectors.dim}-d vectors (EMBEDDING_DIM)"
                )
            self.embeddings = ensure_embeddings(index.get("embed"))
            fields = index.get("fields") or ["$"]
            if isinstance(fields, str):
                fields = [fields]
            self._fields = [(f, "$" if f == "$" else tokenize_path(f)) for f in fields]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._private: _LoopThread | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stop_sweeping = asyncio.Event()

    # Batches ---------------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Reads first (gets in one statement), then every put in one statement.

        Reads see the store as it was before this batch's puts, as in LangGraph's stores.
        """
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        ops = list(ops)
        results: list[Result] = [None] * len(ops)
        gets = [(i, op) for i, op in enumerate(ops) if isinstance(op, GetOp)]
        puts = [op for op in ops if isinstance(op, PutOp)]
        unknown = [
            op for op in ops if not isinstance(op, GetOp | PutOp | SearchOp | ListNamespacesOp)
        ]
        if unknown:
            raise InvalidInputError(f"unknown operation {type(unknown[0]).__name__}")
        prepared_puts = await self._prepare_puts(puts) if puts else None
        if gets:
            await self._get(gets, results)
        for i, op in enumerate(ops):
            if isinstance(op, SearchOp):
                results[i] = await self._search(op)
            elif isinstance(op, ListNamespacesOp):
                results[i] = await self._list_namespaces(op)
        if prepared_puts is not None:
            await self._write(prepared_puts)
        return results

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
            if self._private is None:
                self._private = _LoopThread()
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
        async with transaction(self._sessions, "store put") as session:
            conn = await session.connection()
            await conn.execute(LOCK_KEYS, {"actor": self.actor, "prefixes": prefixes, "keys": keys})
            binary = bool(conn.info.get(CODEC_FLAG))
            vectors = [_VectorArg(v) if binary else _vector_text(v) for v in args[-1]]
            await _driver_fetch(conn, PUT_SQL, [*args[:-1], vectors, prefixes, keys])

    # Reads -----------------------------------------------------------------------------

    async def _get(self, gets: Sequence[tuple[int, GetOp]], results: list[Result]) -> None:
        prefixes, keys, refresh = [], [], []
        for _, op in gets:
            prefixes.append(_namespace(op.namespace))
            keys.append(check_text(str(op.key), "key"))
            refresh.append(bool(op.refresh_ttl))
        rows = await _fetch(
            self._sessions, "store get", GET_SQL, self.actor, prefixes, keys, refresh
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
            where = " AND ".join(_item_conditions(op, params))
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

    async def _vector_search(
        self, op: SearchOp, query: list[float], limit: int, offset: int
    ) -> list[SearchItem]:
        """Exactly over the matching items when they are few, else through the vector index.

        The same rule as PgVectorStore.search: a filter matching fewer than
        exact_scan_max_rows items is scored exactly (found through store_items' indexes);
        a broader one walks the vector index with pgvector's iterative scan, which keeps
        going until enough rows pass the filter. Several vectors per item (several
        fields) count once, at their best score.
        """
        info = await self._vectors.index_info()
        # Enough vector rows to fill limit + offset items even if each has every field.
        fetch = (limit + offset) * max(1, len(self._fields)) * 2 + 1
        exact, gucs = self._vectors._plan(info, min(fetch, 1000))
        params = _Params(self.actor)
        columns = [
            f"set_config({params.add(name)}, {params.add(value)}, true)"
            for name, value in gucs.items()
        ]
        prep = "SELECT " + ", ".join(columns) if columns else "SELECT 1"
        if not exact:
            cap = params.add(self.exact_scan_max_rows)
            where = " AND ".join(_item_conditions(op, params))
            # When the count picks the index, make the planner walk it: joined with
            # store_items it would otherwise score every vector of the table and sort.
            forced = ", ".join(
                f"set_config('{name}', CASE WHEN m.n >= {cap} THEN 'off' ELSE 'on' END, true)"
                for name in INDEX_ONLY
            )
            prep = (
                f"WITH m AS (SELECT count(*) AS n FROM (SELECT 1 FROM store_items i "
                f"WHERE {where} LIMIT {cap}) x) "
                f"SELECT m.n, {forced}{', ' if columns else ''}{', '.join(columns)} FROM m"
            )
        async with transaction(self._sessions, "store search") as session:
            conn = await session.connection()
            binds = {f"p{n}": v for n, v in enumerate(params.values, start=1)}
            row = (await conn.execute(text(re.sub(r"\$(\d+)", r":p\1", prep)), binds)).one()
            if not exact:
                exact = int(row[0]) < self.exact_scan_max_rows
            binary = bool(conn.info.get(CODEC_FLAG))
            params = _Params(self.actor, query if binary else _vector_text(query))
            where = " AND ".join(_item_conditions(op, params))
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
            rows = await _driver_fetch(conn, sql, params.values)
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
        conds = ["i.actor = $1", LIVE]
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

    # TTL -------------------------------------------------------------------------------

    async def sweep_ttl(self) -> int:
        """Delete this actor's expired items and their vectors; returns how many items."""
        rows = await _fetch(
            self._sessions,
            "store sweep_ttl",
            SWEEP_SQL.format(actor="AND actor = $1"),
            self.actor,
        )
        return int(rows[0][0])

    async def start_ttl_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> asyncio.Task[None]:
        """Sweep every `sweep_interval_minutes` (else the TTL config's, else 5) until stopped.

        A failed sweep is logged and the sweeper goes on; returns the sweeper's task.
        """
        if self._sweeper is not None and not self._sweeper.done():
            return self._sweeper
        interval = float(
            sweep_interval_minutes or (self.ttl_config or {}).get("sweep_interval_minutes") or 5
        )
        if not math.isfinite(interval) or interval <= 0:
            raise InvalidInputError("sweep_interval_minutes must be a positive number")
        self._stop_sweeping = asyncio.Event()
        stop = self._stop_sweeping

        async def sweep_forever() -> None:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval * 60)
                    return
                except TimeoutError:
                    pass
                try:
                    swept = await self.sweep_ttl()
                    if swept:
                        logger.info("store swept %d expired items", swept)
                except Exception:
                    logger.exception("store TTL sweep failed; trying again next interval")

        self._sweeper = asyncio.create_task(sweep_forever(), name="chad-memory-ttl-sweeper")
        return self._sweeper

    async def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper; True once it has finished (within `timeout` seconds)."""
        task = self._sweeper
        if task is None or task.done():
            return True
        self._stop_sweeping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=timeout)
        except TimeoutError:
            return False
        return True


async def sweep_expired_items(session_factory: SessionFactory) -> int:
    """Delete every actor's expired store items and their vectors (for operators' jobs)."""
    rows = await _fetch(session_factory, "sweep_expired_items", SWEEP_SQL.format(actor=""))
    return int(rows[0][0])
