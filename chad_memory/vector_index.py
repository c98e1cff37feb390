"""The vector index on `embeddings`: what is there, whether it is stale, and rebuilding it.

IVFFLAT learns its lists from the rows present when it is built; revision 001 builds it on
an empty table, so its lists mean nothing until it is rebuilt on real data. We record what
an index was trained on in its comment (`{"trained_rows": N, ...}`), which needs no schema
change; an index without such a comment counts as trained on nothing.

Search reads this to choose `ivfflat.probes` / `hnsw.ef_search`; `/health` and the logs
report a stale index. Retraining is never automatic: a rebuild reads every vector and takes
minutes on large tables, which is an operator's decision (`chad-memory memory reindex`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger(__name__)

Method = Literal["ivfflat", "hnsw"]
METHODS: tuple[Method, ...] = ("ivfflat", "hnsw")
TABLE = "embeddings"
INDEX_NAMES: dict[Method, str] = {
    "ivfflat": "ix_embeddings_embedding_ivfflat",
    "hnsw": "ix_embeddings_embedding_hnsw",
}
# An IVFFLAT index is stale once the table holds this many times the rows it learnt from
# (and at least STALE_MIN_ROWS, so a handful of rows on a fresh database is not an alarm).
STALE_GROWTH = 2.0
STALE_MIN_ROWS = 1000
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
# Large enough for HNSW's graph on ~100k x 1536-d vectors to stay in memory while building.
BUILD_MAINTENANCE_WORK_MEM = "1GB"


@dataclass(frozen=True)
class VectorIndexInfo:
    """The vector index found on `embeddings` (method None: there is none)."""

    name: str | None
    method: Method | None
    lists: int | None
    m: int | None
    ef_construction: int | None
    trained_rows: int
    rows: int
    valid: bool

    @property
    def stale(self) -> bool:
        """True when an IVFFLAT index learnt its lists from far fewer rows than exist now.

        HNSW inserts each row into its graph as it arrives, so it never goes stale this way.
        """
        if self.method != "ivfflat":
            return False
        return self.rows >= STALE_MIN_ROWS and self.rows > STALE_GROWTH * self.trained_rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "lists": self.lists,
            "m": self.m,
            "ef_construction": self.ef_construction,
            "trained_rows": self.trained_rows,
            "rows": self.rows,
            "valid": self.valid,
            "stale": self.stale,
        }


@dataclass(frozen=True)
class ReindexProgress:
    """One observation of a running build, from pg_stat_progress_create_index."""

    phase: str
    tuples_done: int
    tuples_total: int
    elapsed_s: float


ProgressCallback = Callable[[ReindexProgress], None]


def lists_for_rows(rows: int) -> int:
    """IVFFLAT lists sized to the data: about √rows (at least 1).

    pgvector suggests rows/1000 up to 1M rows; √rows gives smaller lists, so the probes that
    reach recall 0.95 read fewer vectors (measured in bench/: 100k rows, lists 316).
    """
    return max(1, min(32_768, round(math.sqrt(max(rows, 1)))))


def probes_for_lists(lists: int) -> int:
    """ivfflat.probes for an index of `lists` lists: √lists (pgvector's advice), at least 4.

    Measured in bench/ (BENCHMARKS.md): on 100k synthetic vectors (lists 316) recall@10 is
    ~0.98 already at 7 probes, but on real text (MiniLM docstrings, lists 141) 4 probes gave
    only 0.82: real neighbourhoods straddle more lists, so the share scanned must not shrink.
    """
    return max(1, min(lists, max(4, round(math.sqrt(lists)))))


def ef_search_for(k: int) -> int:
    """hnsw.ef_search for k hits: a wide beam, never below 2k.

    Measured in bench/ on 100k hard 1536-d vectors (m=16, ef_construction=64): recall@10
    0.941 at pgvector's default 40, 0.978 at 100, 0.988 at 256, 0.991 at 400, with p50
    growing about linearly. 256 is the compromise; raise it with `ef_search=` for more.
    """
    return min(1000, max(256, 2 * k))


def _parse_options(reloptions: list[str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for option in reloptions or []:
        key, _, value = option.partition("=")
        if value.isdigit():
            out[key] = int(value)
    return out


def _trained_rows(comment: str | None) -> int:
    if not comment:
        return 0
    try:
        data = json.loads(comment)
    except ValueError:
        return 0
    value = data.get("trained_rows") if isinstance(data, dict) else None
    return value if isinstance(value, int) and value >= 0 else 0


async def count_rows(conn: AsyncConnection) -> int:
    """Rows in `embeddings`: the planner's estimate scaled to the current size, else count(*).

    Cheap enough for /health and for every search's cache refresh; exact when the table
    has never been analysed (small, new tables).
    """
    row = (
        await conn.execute(
            text(
                "SELECT c.reltuples, c.relpages, "
                "pg_relation_size(c.oid) / current_setting('block_size')::int AS pages "
                "FROM pg_class c WHERE c.oid = CAST(:table AS regclass)"
            ),
            {"table": TABLE},
        )
    ).one()
    reltuples, relpages, pages = float(row[0]), int(row[1]), int(row[2])
    if reltuples >= 0 and relpages > 0:
        return round(reltuples / relpages * pages)
    return int((await conn.execute(text(f"SELECT count(*) FROM {TABLE}"))).scalar_one())


async def inspect_index(conn: AsyncConnection) -> VectorIndexInfo:
    """The vector index present on `embeddings` (the first valid one, HNSW preferred)."""
    rows = await count_rows(conn)
    found = (
        await conn.execute(
            text(
                "SELECT ic.relname, am.amname, ic.reloptions, i.indisvalid, "
                "obj_description(ic.oid, 'pg_class') "
                "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
                "JOIN pg_am am ON am.oid = ic.relam "
                "WHERE i.indrelid = CAST(:table AS regclass) AND am.amname IN ('ivfflat', 'hnsw') "
                "ORDER BY i.indisvalid DESC, am.amname = 'hnsw' DESC, ic.relname"
            ),
            {"table": TABLE},
        )
    ).all()
    if not found:
        return VectorIndexInfo(None, None, None, None, None, 0, rows, True)
    name, amname, reloptions, valid, comment = found[0]
    options = _parse_options(reloptions)
    method: Method = "hnsw" if amname == "hnsw" else "ivfflat"
    return VectorIndexInfo(
        name=name,
        method=method,
        lists=options.get("lists", 100) if method == "ivfflat" else None,
        m=options.get("m", HNSW_M) if method == "hnsw" else None,
        ef_construction=options.get("ef_construction", HNSW_EF_CONSTRUCTION)
        if method == "hnsw"
        else None,
        trained_rows=_trained_rows(comment),
        rows=rows,
        valid=bool(valid),
    )


async def _watch_progress(
    engine: AsyncEngine, started: float, progress: ProgressCallback, every: float
) -> None:
    """Report the build's phase and tuple counts until cancelled."""
    async with engine.connect() as conn:
        while True:
            await asyncio.sleep(every)
            row = (
                await conn.execute(
                    text(
                        "SELECT phase, tuples_done, tuples_total "
                        "FROM pg_stat_progress_create_index "
                        "WHERE relid = CAST(:table AS regclass)"
                    ),
                    {"table": TABLE},
                )
            ).first()
            await conn.rollback()  # a fresh snapshot of the progress view each time
            if row is not None:
                progress(
                    ReindexProgress(
                        str(row[0]), int(row[1] or 0), int(row[2] or 0), time.monotonic() - started
                    )
                )


async def rebuild_index(
    engine: AsyncEngine,
    *,
    method: Method = "ivfflat",
    lists: int | None = None,
    m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
    progress: ProgressCallback | None = None,
    progress_every: float = 1.0,
) -> VectorIndexInfo:
    """Build a fresh vector index next to the old one, then drop the old one.

    Both steps run CONCURRENTLY, so reads and writes continue throughout; searches use the
    old index until the new one is valid. Every value reaching the DDL is an int or one of
    METHODS (allow-listed, never formatted from free text).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if lists is not None and not 1 <= int(lists) <= 32_768:
        raise ValueError("lists must be between 1 and 32768")
    if not 2 <= int(m) <= 100 or not 4 <= int(ef_construction) <= 1000:
        raise ValueError("m must be 2..100 and ef_construction 4..1000")
    started = time.monotonic()
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        before = await inspect_index(conn)
        rows = before.rows
        if method == "ivfflat":
            n_lists = int(lists) if lists is not None else lists_for_rows(rows)
            with_clause = f"lists = {n_lists}"
        else:
            with_clause = f"m = {int(m)}, ef_construction = {int(ef_construction)}"
        final = INDEX_NAMES[method]
        building = f"{final}_new"
        old = [
            r[0]
            for r in (
                await conn.execute(
                    text(
                        "SELECT ic.relname FROM pg_index i "
                        "JOIN pg_class ic ON ic.oid = i.indexrelid "
                        "JOIN pg_am am ON am.oid = ic.relam "
                        "WHERE i.indrelid = CAST(:table AS regclass) "
                        "AND am.amname IN ('ivfflat', 'hnsw')"
                    ),
                    {"table": TABLE},
                )
            ).all()
        ]
        # A build interrupted earlier leaves an invalid index behind; clear it first.
        if building in old:
            await conn.execute(text(f'DROP INDEX CONCURRENTLY IF EXISTS "{building}"'))
            old.remove(building)
        await conn.execute(text(f"SET maintenance_work_mem = '{BUILD_MAINTENANCE_WORK_MEM}'"))
        # A build takes minutes on large tables: DB_STATEMENT_TIMEOUT_MS is for requests.
        await conn.execute(text("SET statement_timeout = 0"))
        watcher = (
            asyncio.create_task(_watch_progress(engine, started, progress, progress_every))
            if progress is not None
            else None
        )
        try:
            await conn.execute(
                text(
                    f'CREATE INDEX CONCURRENTLY "{building}" ON {TABLE} '
                    f"USING {method} (embedding vector_cosine_ops) WITH ({with_clause})"
                )
            )
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            await conn.execute(text("RESET maintenance_work_mem"))
            await conn.execute(text("RESET statement_timeout"))
        for name in old:
            await conn.execute(text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))
        await conn.execute(text(f'ALTER INDEX "{building}" RENAME TO "{final}"'))
        note = json.dumps({"trained_rows": rows, "built_at": time.time()})
        # COMMENT takes no bind parameters; the JSON holds only numbers (quoted literal).
        await conn.execute(text(f"COMMENT ON INDEX \"{final}\" IS '{note}'"))
        # VACUUM too: the all-visible map lets search count a filter's rows from the
        # btree alone (an index-only scan), instead of visiting a heap page per row.
        await conn.execute(text(f"VACUUM (ANALYZE) {TABLE}"))
        after = await inspect_index(conn)
    logger.info(
        "rebuilt vector index %s (%s) on %d rows in %.1f s",
        final,
        with_clause,
        rows,
        time.monotonic() - started,
    )
    return after
