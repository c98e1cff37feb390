"""The vector index on `embeddings`: what is there, what it was calibrated to, rebuilding it.

IVFFLAT learns its lists from the rows present when it is built; revision 001 builds it on
an empty table, so its lists mean nothing until it is rebuilt on real data. What an index
was trained on and what its calibration measured (chad_memory.vector_calibration) live in
the index's comment, a small JSON note, which needs no schema change and is replaced with
the index: `{"trained_rows": N, "built_at": t, "calibration": {...}}`. An index without
such a note counts as trained on nothing and uncalibrated.

Every search reads the index's identity (OID and note) in the round trip that sets its
transaction's settings (`INDEX_STATE_SQL`), so a rebuild or calibration by any process is
used by every process on its next search. Rebuilds and calibrations take a PostgreSQL
advisory lock, so one runs at a time across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger(__name__)

Method = Literal["ivfflat", "hnsw"]
METHODS: tuple[Method, ...] = get_args(Method)
TABLE = "embeddings"
INDEX_NAMES: dict[Method, str] = {
    "ivfflat": "ix_embeddings_embedding_ivfflat",
    "hnsw": "ix_embeddings_embedding_hnsw",
}
# An IVFFLAT index is stale once the table holds this many times the rows it learnt from
# (and at least STALE_MIN_ROWS, so a handful of rows on a fresh database is not an alarm):
# its lists no longer fit the data, so it is rebuilt (VECTOR_AUTO_REBUILD) or announced.
STALE_GROWTH = 2.0
STALE_MIN_ROWS = 1000
# Any index is recalibrated once the table holds this many times the rows it was last
# calibrated on: more rows per list (IVFFLAT) or a larger graph (HNSW) need more probes
# or a wider beam for the same recall.
RECALIBRATE_GROWTH = 1.5
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
# Large enough for HNSW's graph on ~100k x 1536-d vectors to stay in memory while building.
BUILD_MAINTENANCE_WORK_MEM = "1GB"
# pg_advisory_lock key held while an index is rebuilt or calibrated ("chadvidx").
MAINTENANCE_LOCK_KEY = 0x6368616476696478

# The vector index a search would use, as one JSON value: [oid, name, method, reloptions,
# valid, note]. Shared by inspect_index and the search's preparing statement.
INDEX_STATE_SQL = (
    "(SELECT json_build_array(ic.oid, ic.relname, am.amname, ic.reloptions, i.indisvalid, "
    "obj_description(ic.oid, 'pg_class'))::text "
    "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
    "JOIN pg_am am ON am.oid = ic.relam "
    f"WHERE i.indrelid = '{TABLE}'::regclass AND am.amname IN ('ivfflat', 'hnsw') "
    "ORDER BY i.indisvalid DESC, am.amname = 'hnsw' DESC, ic.relname LIMIT 1)"
)
# Rows in the table without counting them: the planner's density scaled to the current
# size, or the statistics' live-tuple count (a few seconds behind) when it is larger or
# the table was never analysed.
ROWS_ESTIMATE_SQL = (
    "(SELECT GREATEST(CASE WHEN c.reltuples >= 0 AND c.relpages > 0 THEN "
    "c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::int)"
    " END, pg_stat_get_live_tuples(c.oid))::bigint "
    f"FROM pg_class c WHERE c.oid = '{TABLE}'::regclass)"
)

Setting = Literal["ivfflat.probes", "hnsw.ef_search"]


@dataclass(frozen=True)
class Calibration:
    """What calibration measured on an index: the smallest setting reaching the aim."""

    setting: Setting
    value: int
    recall: float
    target: float
    k: int
    queries: int
    rows: int
    at: float
    seconds: float

    @property
    def met(self) -> bool:
        return self.recall >= self.target

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        out["at"] = datetime.fromtimestamp(self.at, UTC).isoformat()
        out["met"] = self.met
        return out

    @classmethod
    def from_note(cls, data: Any) -> Calibration | None:
        if not isinstance(data, dict):
            return None
        try:
            setting = data["setting"]
            if setting not in ("ivfflat.probes", "hnsw.ef_search"):
                return None
            return cls(
                setting=setting,
                value=int(data["value"]),
                recall=float(data["recall"]),
                target=float(data["target"]),
                k=int(data["k"]),
                queries=int(data["queries"]),
                rows=int(data["rows"]),
                at=float(data["at"]),
                seconds=float(data["seconds"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


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
    oid: int | None = None
    # The index's comment as read: with oid, what identifies the index and its calibration.
    note: str | None = None
    built_at: float | None = None
    calibration: Calibration | None = None

    @property
    def identity(self) -> tuple[int | None, str | None, bool]:
        return (self.oid, self.note, self.valid)

    @property
    def trained(self) -> bool:
        """False for an IVFFLAT index built on an empty table (revision 001), or one whose
        note we did not write: its lists are unknown, so search scans exactly until the
        rebuild. HNSW needs no training: each row joins the graph as it arrives."""
        return self.method == "hnsw" or self.trained_rows > 0

    @property
    def stale(self) -> bool:
        """True when an IVFFLAT index learnt its lists from far fewer rows than exist now.

        HNSW inserts each row into its graph as it arrives, so it never goes stale this way.
        """
        if self.method != "ivfflat":
            return False
        return self.rows >= STALE_MIN_ROWS and self.rows > STALE_GROWTH * self.trained_rows

    @property
    def rebuild_due(self) -> bool:
        return self.stale

    @property
    def recalibration_due(self) -> bool:
        """A usable index never calibrated, or calibrated on far fewer rows than exist now."""
        if self.method is None or not self.valid or not self.trained or self.stale:
            return False
        if self.calibration is None:
            return True
        return self.rows > RECALIBRATE_GROWTH * max(self.calibration.rows, 1)

    def with_rows(self, rows: int) -> VectorIndexInfo:
        return VectorIndexInfo(
            self.name,
            self.method,
            self.lists,
            self.m,
            self.ef_construction,
            self.trained_rows,
            rows,
            self.valid,
            self.oid,
            self.note,
            self.built_at,
            self.calibration,
        )

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
            "built_at": (
                datetime.fromtimestamp(self.built_at, UTC).isoformat()
                if self.built_at is not None
                else None
            ),
            "calibration": self.calibration.as_dict() if self.calibration else None,
            "rebuild_due": self.rebuild_due,
            "recalibration_due": self.recalibration_due,
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
    reach the target recall read fewer vectors (BENCHMARKS.md).
    """
    return max(1, min(32_768, round(math.sqrt(max(rows, 1)))))


def probes_for_lists(lists: int) -> int:
    """ivfflat.probes for an index not calibrated yet: √lists (pgvector's advice), at least 4.

    Only until calibration (at the end of every build) has measured the right value on the
    index's own data: on real text this guess falls short of the target (BENCHMARKS.md).
    """
    return max(1, min(lists, max(4, round(math.sqrt(lists)))))


def ef_search_for(k: int) -> int:
    """hnsw.ef_search for an index not calibrated yet: a wide beam, never below 2k.

    pgvector's default (40) falls short of the target recall on hard data where 256 reaches
    it (BENCHMARKS.md); calibration replaces it after a build.
    """
    return min(1000, max(256, 2 * k))


def _parse_options(reloptions: list[str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for option in reloptions or []:
        key, _, value = option.partition("=")
        if value.isdigit():
            out[key] = int(value)
    return out


def parse_note(note: str | None) -> dict[str, Any]:
    """The index's JSON note, or {} for no comment or a comment that is not ours."""
    if not note:
        return {}
    try:
        data = json.loads(note)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def info_from_state(state: Any, rows: int) -> VectorIndexInfo:
    """A VectorIndexInfo from INDEX_STATE_SQL's value (JSON text, or None: no index)."""
    if state is None:
        return VectorIndexInfo(None, None, None, None, None, 0, rows, True)
    oid, name, amname, reloptions, valid, note = (
        json.loads(state) if isinstance(state, str) else state
    )
    options = _parse_options(reloptions)
    data = parse_note(note)
    trained = data.get("trained_rows")
    built_at = data.get("built_at")
    method: Method = "hnsw" if amname == "hnsw" else "ivfflat"
    return VectorIndexInfo(
        name=name,
        method=method,
        lists=options.get("lists", 100) if method == "ivfflat" else None,
        m=options.get("m", HNSW_M) if method == "hnsw" else None,
        ef_construction=options.get("ef_construction", HNSW_EF_CONSTRUCTION)
        if method == "hnsw"
        else None,
        trained_rows=trained if isinstance(trained, int) and trained >= 0 else 0,
        rows=rows,
        valid=bool(valid),
        oid=int(oid),
        note=note,
        built_at=float(built_at) if isinstance(built_at, int | float) else None,
        calibration=Calibration.from_note(data.get("calibration")),
    )


async def count_rows(conn: AsyncConnection) -> int:
    """Rows in `embeddings`: the planner's estimate scaled to the current size, else count(*).

    Exact when the table has never been analysed (small, new tables).
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
    state = (await conn.execute(text(f"SELECT {INDEX_STATE_SQL}"))).scalar_one()
    return info_from_state(state, rows)


async def write_note(conn: AsyncConnection, name: str, note: dict[str, Any]) -> None:
    """Replace the index's JSON note (COMMENT ON takes no bind parameters: a quoted literal).

    COMMENT takes a SHARE UPDATE EXCLUSIVE lock: reads and writes of the table go on.
    """
    body = json.dumps(note).replace("'", "''")
    quoted = name.replace('"', '""')
    await conn.execute(text(f"COMMENT ON INDEX \"{quoted}\" IS '{body}'"))


@contextlib.asynccontextmanager
async def maintenance_lock(engine: AsyncEngine, *, wait: bool) -> AsyncIterator[bool]:
    """Hold the cluster-wide maintenance lock for the block; yields False if busy (no wait).

    A session-level advisory lock on a connection of its own, so it spans the build's and
    the calibration's autocommit statements and is released even if they fail.

    Waiting is polling, never `pg_advisory_lock`: a waiter blocked in that statement holds
    a snapshot, and the holder's CREATE INDEX CONCURRENTLY waits for every transaction with
    an older snapshot to end, so holder and waiter would wait for each other through the
    client, where the server's deadlock detector cannot see.
    """
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        got = await _try_maintenance_lock(conn)
        pause = LOCK_POLL_FIRST_S
        while wait and not got:
            await asyncio.sleep(pause)
            pause = min(pause * 2, LOCK_POLL_MAX_S)
            got = await _try_maintenance_lock(conn)
        try:
            yield got
        finally:
            if got:
                with contextlib.suppress(Exception):
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": MAINTENANCE_LOCK_KEY}
                    )


# How often a waiter asks for the maintenance lock again: quickly at first (a calibration
# takes seconds), then at most once a second (a build can take minutes).
LOCK_POLL_FIRST_S = 0.05
LOCK_POLL_MAX_S = 1.0


async def _try_maintenance_lock(conn: AsyncConnection) -> bool:
    result = await conn.execute(
        text("SELECT pg_try_advisory_lock(:key)"), {"key": MAINTENANCE_LOCK_KEY}
    )
    return bool(result.scalar_one())


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
    METHODS (allow-listed, never formatted from free text). The new index is not calibrated
    yet: chad_memory.vector_calibration.rebuild_and_calibrate does both under the lock.
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
        await write_note(conn, final, {"trained_rows": rows, "built_at": time.time()})
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
