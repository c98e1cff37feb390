"""Retention: delete old runs (with everything hanging off them) in bounded batches.

Deleting a year of history in one statement holds its row locks and its undo for the
whole statement, and grows the server's memory with the cascade (the failure peers hit).
Here each batch is its own short transaction over at most `batch_size` runs, chosen
oldest first through `ix_runs_created_at`, and rows locked by a concurrent writer are
skipped (`SKIP LOCKED`) rather than waited for, so agents keep writing while it runs.
The client holds one batch of ids at a time, so memory stays flat however much goes.

Space: plain `VACUUM` (run after the batches unless told not to) makes the freed pages
reusable by new rows without locking writers out; PostgreSQL hands pages back to the
operating system only from the end of a table. `reclaim=True` runs `VACUUM FULL`, which
rewrites the tables and returns the space but locks each table while it does: a
maintenance-window option. Dropping whole time partitions is the lock-free way to return
space at scale (DATABASE_README, "Growing past one machine").
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from chad_memory.errors import ChadMemoryError, InvalidInputError
from chad_memory.stores.transactions import transaction, translated_errors
from chad_memory.vocabulary import RUN_STATUSES

logger = logging.getLogger(__name__)

_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"^\s*(\d{1,9})\s*([dhms])\s*$")

# Tables whose rows a pruned run takes with it, in the order they are deleted.
CHILD_TABLES = ("steps", "llm_calls", "artifacts")
VACUUMED_TABLES = ("runs", "steps", "llm_calls", "artifacts", "embeddings")


def parse_duration(value: str) -> timedelta:
    """`90d`, `12h`, `30m`, `45s` -> timedelta; anything else is InvalidInputError."""
    match = _DURATION.match(value)
    if match is None:
        raise InvalidInputError(
            f"duration must be a whole number followed by d, h, m or s (like 90d), got {value!r}"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidInputError("duration must be greater than zero")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class PruneCriteria:
    """Which runs go: created before `cutoff`, optionally one actor's, one status's."""

    cutoff: datetime
    actor: str | None = None
    status: str | None = None
    # Embeddings tied to a pruned run (embeddings.run_id) go too; else they are kept and
    # unlinked (run_id SET NULL), since memory often outlives the run that wrote it.
    embeddings: bool = False

    def __post_init__(self) -> None:
        if self.cutoff.tzinfo is None:
            raise InvalidInputError("cutoff must carry a time zone")
        if self.status is not None and self.status not in RUN_STATUSES:
            raise InvalidInputError(f"status must be one of {', '.join(RUN_STATUSES)}")
        if self.actor is not None and not self.actor.strip():
            raise InvalidInputError("actor must not be empty")

    @classmethod
    def older_than(
        cls, age: timedelta, *, now: datetime | None = None, **kwargs: Any
    ) -> PruneCriteria:
        return cls(cutoff=(now or datetime.now(UTC)) - age, **kwargs)

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses = ["created_at < :cutoff"]
        params: dict[str, Any] = {"cutoff": self.cutoff}
        if self.actor is not None:
            clauses.append("actor = :actor")
            params["actor"] = self.actor
        if self.status is not None:
            clauses.append("status = :status")
            params["status"] = self.status
        return " AND ".join(clauses), params


@dataclass
class PruneResult:
    """Rows deleted (or, in a dry run, that would be) per table."""

    dry_run: bool
    deleted: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("runs", *CHILD_TABLES, "embeddings"), 0)
    )
    batches: int = 0
    elapsed_s: float = 0.0
    vacuumed: str | None = None

    def add(self, table: str, count: int) -> None:
        self.deleted[table] += count


Progress = Callable[[PruneResult], None]


def _batch_statement(criteria: PruneCriteria) -> str:
    """One batch: lock up to :batch old runs, delete their children and them, count all."""
    where, _ = criteria.where()
    children = ",\n".join(
        f"gone_{table} AS (DELETE FROM {table} WHERE run_id IN (SELECT id FROM doomed) RETURNING 1)"
        for table in CHILD_TABLES
    )
    embeddings = (
        "gone_embeddings AS (DELETE FROM embeddings WHERE run_id IN (SELECT id FROM doomed) "
        "RETURNING 1)"
        if criteria.embeddings
        else "gone_embeddings AS (SELECT 1 WHERE false)"
    )
    counts = ", ".join(
        f"(SELECT count(*) FROM gone_{t}) AS {t}" for t in (*CHILD_TABLES, "embeddings")
    )
    return f"""
        WITH doomed AS (
            SELECT id FROM runs WHERE {where}
            ORDER BY created_at, id LIMIT :batch FOR UPDATE SKIP LOCKED
        ),
        {children},
        {embeddings},
        gone_runs AS (DELETE FROM runs WHERE id IN (SELECT id FROM doomed) RETURNING 1)
        SELECT (SELECT count(*) FROM gone_runs) AS runs, {counts}
    """


def _dry_run_statement(criteria: PruneCriteria) -> str:
    where, _ = criteria.where()
    counts = ", ".join(
        f"(SELECT count(*) FROM {t} WHERE run_id IN (SELECT id FROM doomed)) AS {t}"
        for t in (*CHILD_TABLES, "embeddings")
    )
    return f"""
        WITH doomed AS (SELECT id FROM runs WHERE {where})
        SELECT (SELECT count(*) FROM doomed) AS runs, {counts}
    """


async def prune(
    engine: AsyncEngine,
    criteria: PruneCriteria,
    *,
    dry_run: bool = False,
    batch_size: int = 500,
    vacuum: bool = True,
    reclaim: bool = False,
    progress: Progress | None = None,
) -> PruneResult:
    """Delete the runs `criteria` selects, a batch per transaction, and report counts.

    Runs are taken oldest first; a run created after the prune started is never touched
    (the cutoff is fixed). Safe to interrupt: every finished batch stays deleted and the
    next call carries on.
    """
    if not 1 <= batch_size <= 10_000:
        raise InvalidInputError("batch_size must be between 1 and 10000")
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    result = PruneResult(dry_run=dry_run)
    started = time.perf_counter()
    _, params = criteria.where()
    if dry_run:
        async with transaction(sessions, "prune (dry run)") as session:
            row = (await session.execute(text(_dry_run_statement(criteria)), params)).one()
        for table, count in row._mapping.items():
            result.add(table, int(count))
        result.elapsed_s = time.perf_counter() - started
        return result

    statement = text(_batch_statement(criteria))
    while True:
        async with transaction(sessions, "prune") as session:
            row = (await session.execute(statement, {**params, "batch": batch_size})).one()
        counts = {table: int(count) for table, count in row._mapping.items()}
        if counts["runs"] == 0:
            break
        for table, count in counts.items():
            result.add(table, count)
        result.batches += 1
        result.elapsed_s = time.perf_counter() - started
        if progress is not None:
            progress(result)
    if vacuum and result.deleted["runs"]:
        await vacuum_tables(engine, full=reclaim)
        result.vacuumed = "VACUUM FULL" if reclaim else "VACUUM"
    result.elapsed_s = time.perf_counter() - started
    return result


async def vacuum_tables(engine: AsyncEngine, *, full: bool = False) -> None:
    """VACUUM (or VACUUM FULL) the run-history tables; VACUUM cannot run in a transaction."""
    verb = "VACUUM (FULL, ANALYZE)" if full else "VACUUM (ANALYZE)"
    with translated_errors("vacuum"):
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in VACUUMED_TABLES:
                await conn.execute(text(f"{verb} {table}"))


async def table_bytes(engine: AsyncEngine, tables: tuple[str, ...] = VACUUMED_TABLES) -> int:
    """The tables' size on disk with their indexes and TOAST (for before/after figures)."""
    async with engine.connect() as conn:
        total = await conn.scalar(
            text("SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest(:tables) AS t"),
            {"tables": list(tables)},
        )
    return int(total or 0)


# Any constant works, as long as nothing else takes this advisory lock key.
SWEEPER_LOCK = 0x636D5F7072756E65  # "cm_prune"


async def sweep_once(engine: AsyncEngine, *, days: int, embeddings: bool = False) -> bool:
    """One round of the sweeper; False when another process holds the round's lock.

    The lock is a transaction-level advisory lock held by a transaction left open on a
    connection of its own while the batches run on others: it ends with that transaction
    whatever happens, and it works through a transaction-mode pooler, where a
    session-level lock would stay behind on whichever server connection took it.
    """
    async with engine.connect() as conn, conn.begin():
        mine = await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SWEEPER_LOCK})
        if not mine:
            return False
        criteria = PruneCriteria.older_than(timedelta(days=days), embeddings=embeddings)
        result = await prune(engine, criteria)
        if result.deleted["runs"]:
            logger.info(
                "retention: deleted %s in %.1fs", json.dumps(result.deleted), result.elapsed_s
            )
        return True


async def retention_sweeper(
    engine: AsyncEngine, *, days: int, interval_s: float, embeddings: bool = False
) -> None:
    """Prune runs older than `days`, then sleep `interval_s`, until cancelled.

    Several workers or processes may run it: the one holding the advisory lock sweeps,
    the others skip that round (two sweeps would be safe, thanks to SKIP LOCKED, but
    wasteful). A failed round is logged and tried again next interval.
    """
    while True:
        try:
            await sweep_once(engine, days=days, embeddings=embeddings)
        except ChadMemoryError as exc:
            logger.warning("retention sweep failed, trying again later: %s", exc)
        except (OSError, DBAPIError) as exc:
            logger.warning("retention sweep failed, trying again later: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)
