"""Export and import: an actor's (or everyone's) data as JSON Lines, ids kept.

One line per row: `{"kind": "run", "data": {...every column...}}`. Kinds come in an order
that satisfies the foreign keys on import (threads, messages, runs, steps, LLM calls,
artifacts, LangGraph store items, embeddings), each read through a server-side cursor so
memory stays flat however large the export. Columns come from the ORM tables, so a column
added by a later revision is exported without touching this module; values are JSON-native
(UUIDs and decimals as strings, timestamps in ISO 8601 with their offset, vectors as float
lists).

Import inserts with `ON CONFLICT (id) DO NOTHING`, so importing the same file twice, or
an export that overlaps what the database already holds, changes nothing. A reference to
a row that the file does not carry (an export `--since` a date can leave a run pointing
at an older thread) is stored as NULL on the nullable link and counted as `unlinked`.
API keys are never exported: they are credentials, not data.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Column, Table, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import UUID as UUIDType
from sqlalchemy.types import DateTime, Numeric

from chad_memory.errors import InvalidInputError
from chad_memory.models import (
    Artifact,
    Embedding,
    LLMCall,
    Message,
    Run,
    Step,
    StoreItem,
    Thread,
)
from chad_memory.stores.transactions import translated_errors

FORMAT_VERSION = 1
BATCH_ROWS = 500

# (kind, table) in foreign-key order: every row's required parents come before it.
KINDS: tuple[tuple[str, Table], ...] = tuple(
    (kind, model.__table__)  # type: ignore[misc]
    for kind, model in (
        ("thread", Thread),
        ("message", Message),
        ("run", Run),
        ("step", Step),
        ("llm_call", LLMCall),
        ("artifact", Artifact),
        ("store_item", StoreItem),
        ("embedding", Embedding),
    )
)
TABLES = dict(KINDS)
# Nullable links that may point outside an export: (kind, column) -> referenced kind.
OPTIONAL_LINKS: dict[tuple[str, str], str] = {
    ("run", "thread_id"): "thread",
    ("step", "parent_step_id"): "step",
    ("llm_call", "step_id"): "step",
    ("artifact", "step_id"): "step",
    ("embedding", "run_id"): "run",
}


@dataclass(frozen=True)
class ExportScope:
    """Whose rows, and from when: runs created, threads updated, embeddings created since."""

    actor: str | None = None
    since: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.since.tzinfo is None:
            raise InvalidInputError("since must carry a time zone")


@dataclass
class TransferCounts:
    """Rows per kind written (export) or inserted (import; skipped = already there)."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    skipped: int = 0
    unlinked: int = 0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


Progress = Callable[[TransferCounts], None]


def _conditions(kind: str, scope: ExportScope) -> list[ColumnElement[bool]]:
    runs, threads = TABLES["run"], TABLES["thread"]
    since = scope.since
    out: list[ColumnElement[bool]] = []
    if kind == "thread":
        if scope.actor is not None:
            out.append(threads.c.actor == scope.actor)
        if since is not None:
            out.append(threads.c.updated_at >= since)
    elif kind == "message":
        owned = select(threads.c.id).where(*_conditions("thread", scope))
        out.append(TABLES["message"].c.thread_id.in_(owned))
    elif kind == "run":
        if scope.actor is not None:
            out.append(runs.c.actor == scope.actor)
        if since is not None:
            out.append(runs.c.created_at >= since)
    elif kind in ("embedding", "store_item"):
        table = TABLES[kind]
        if scope.actor is not None:
            out.append(table.c.actor == scope.actor)
        if since is not None:
            out.append(table.c.created_at >= since)
    else:  # children of runs
        owned = select(runs.c.id).where(*_conditions("run", scope))
        out.append(TABLES[kind].c.run_id.in_(owned))
    return out


def _order(kind: str, table: Table) -> list[Column[Any]]:
    if kind == "step":
        return [table.c.run_id, table.c.step_index]
    if kind == "message":
        return [table.c.thread_id, table.c.created_at, table.c.id]
    if kind == "llm_call":  # in the order they ran, as a run lists them
        return [table.c.run_id, table.c.started_at, table.c.seq, table.c.id]
    return [table.c.created_at, table.c.id]


def _to_json(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "tolist"):  # a vector read back as a numpy array
        return value.tolist()
    return value


def _from_json(column: Column[Any], value: Any) -> Any:
    if value is None:
        return None
    kind = column.type
    if isinstance(kind, UUIDType):
        return uuid.UUID(value)
    if isinstance(kind, DateTime):
        return datetime.fromisoformat(value)
    if isinstance(kind, Numeric) and not isinstance(value, float | int):
        return Decimal(value)
    return value


async def export_records(
    engine: AsyncEngine, scope: ExportScope | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Every row in scope as `{"kind", "data"}`, a header first, streamed from the server."""
    scope = scope or ExportScope()
    yield {
        "kind": "header",
        "data": {
            "format": FORMAT_VERSION,
            "actor": scope.actor,
            "since": scope.since.isoformat() if scope.since else None,
        },
    }
    with translated_errors("export"):
        async with engine.connect() as conn:
            for kind, table in KINDS:
                query = (
                    select(table)
                    .where(*_conditions(kind, scope))
                    .order_by(*_order(kind, table))
                    .execution_options(yield_per=BATCH_ROWS)
                )
                result = await conn.stream(query)
                async for row in result:
                    data = {name: _to_json(value) for name, value in row._mapping.items()}
                    yield {"kind": kind, "data": data}


def _open_text(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


async def export_to_file(
    engine: AsyncEngine,
    path: Path,
    scope: ExportScope | None = None,
    *,
    progress: Progress | None = None,
    every: int = 10_000,
) -> TransferCounts:
    """Write `export_records` to `path` (gzip when it ends in .gz); returns the counts."""
    counts = TransferCounts()
    with _open_text(path, "w") as out:
        async for record in export_records(engine, scope):
            out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
            out.write("\n")
            if record["kind"] != "header":
                counts.rows[record["kind"]] += 1
                if progress is not None and counts.total % every == 0:
                    progress(counts)
    return counts


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of an export file, checked line by line (a bad line names its number)."""
    with _open_text(path, "r") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"line {number}: not JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or not isinstance(record.get("data"), dict):
                raise InvalidInputError(f"line {number}: expected {{'kind': ..., 'data': {{}}}}")
            kind = record.get("kind")
            if kind == "header":
                if record["data"].get("format") != FORMAT_VERSION:
                    raise InvalidInputError(
                        f"line {number}: export format {record['data'].get('format')!r} "
                        f"is not {FORMAT_VERSION}"
                    )
                continue
            if kind not in TABLES:
                raise InvalidInputError(f"line {number}: unknown kind {kind!r}")
            yield record


class _Importer:
    """Inserts batches of one kind on one connection, nulling links that point nowhere."""

    def __init__(self, conn: AsyncConnection, counts: TransferCounts) -> None:
        self.conn = conn
        self.counts = counts
        self.deferred_parents = False

    def _row(self, table: Table, data: dict[str, Any]) -> dict[str, Any]:
        unknown = set(data) - set(table.c.keys())
        if unknown:
            raise InvalidInputError(
                f"{table.name}: columns this database does not have: {', '.join(sorted(unknown))}"
            )
        row = {name: _from_json(table.c[name], value) for name, value in data.items()}
        if table.name == "llm_calls" and row.get("created_at") is not None:
            # An export from before calls had a start time: they started when stored.
            row.setdefault("started_at", row["created_at"])
        return row

    async def _existing(self, kind: str, ids: set[uuid.UUID]) -> set[uuid.UUID]:
        if not ids:
            return set()
        table = TABLES[kind]
        found = await self.conn.execute(select(table.c.id).where(table.c.id.in_(ids)))
        return {row[0] for row in found}

    async def flush(self, kind: str, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        table = TABLES[kind]
        rows = [self._row(table, data) for data in batch]
        batch_ids = {row["id"] for row in rows}
        for (link_kind, column), target in OPTIONAL_LINKS.items():
            if link_kind != kind:
                continue
            wanted = {row[column] for row in rows if row.get(column) is not None}
            if target == kind:
                wanted -= batch_ids
            missing = wanted - await self._existing(target, wanted)
            for row in rows:
                if row.get(column) in missing:
                    if kind == "step" and column == "parent_step_id":
                        # The parent may come in a later batch: link it at the end.
                        await self._defer_parent(row["id"], row[column])
                    else:
                        self.counts.unlinked += 1
                    row[column] = None
        statement = pg_insert(table).values(rows).on_conflict_do_nothing(index_elements=["id"])
        inserted = await self.conn.execute(statement.returning(table.c.id))
        done = len(inserted.all())
        self.counts.rows[kind] += done
        self.counts.skipped += len(rows) - done

    async def _defer_parent(self, step_id: uuid.UUID, parent_id: uuid.UUID) -> None:
        if not self.deferred_parents:
            await self.conn.execute(
                text(
                    "CREATE TEMP TABLE import_step_parents (id uuid PRIMARY KEY, parent uuid) "
                    "ON COMMIT DROP"
                )
            )
            self.deferred_parents = True
        await self.conn.execute(
            text("INSERT INTO import_step_parents VALUES (:id, :parent) ON CONFLICT DO NOTHING"),
            {"id": step_id, "parent": parent_id},
        )

    async def finish(self) -> None:
        if not self.deferred_parents:
            return
        linked = await self.conn.execute(
            text(
                "UPDATE steps SET parent_step_id = p.parent FROM import_step_parents p "
                "JOIN steps parent ON parent.id = p.parent "
                "WHERE steps.id = p.id AND steps.parent_step_id IS NULL"
            )
        )
        total = await self.conn.scalar(text("SELECT count(*) FROM import_step_parents"))
        self.counts.unlinked += int(total or 0) - (linked.rowcount or 0)


async def import_file(
    engine: AsyncEngine,
    path: Path,
    *,
    progress: Progress | None = None,
) -> TransferCounts:
    """Load an export into this database in one transaction; ids are kept, repeats skipped.

    One transaction keeps a half-imported file from ever being visible: a bad line or a
    failed insert leaves the database as it was.
    """
    counts = TransferCounts()
    with translated_errors("import"):
        async with engine.begin() as conn:
            importer = _Importer(conn, counts)
            kind: str | None = None
            batch: list[dict[str, Any]] = []
            order = [k for k, _ in KINDS]
            for record in read_records(path):
                if record["kind"] != kind:
                    if kind is not None and order.index(record["kind"]) < order.index(kind):
                        raise InvalidInputError(
                            f"{record['kind']} rows after {kind} rows: not an export's order"
                        )
                    if kind is not None:
                        await importer.flush(kind, batch)
                    kind, batch = record["kind"], []
                batch.append(record["data"])
                if kind is not None and len(batch) >= BATCH_ROWS:
                    await importer.flush(kind, batch)
                    batch = []
                    if progress is not None:
                        progress(counts)
            if kind is not None:
                await importer.flush(kind, batch)
            await importer.finish()
    return counts
