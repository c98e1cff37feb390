"""Export: an actor's (or everyone's) data as JSON Lines, ids kept.

One line per row: `{"kind": "run", "data": {...every column...}}`. Kinds come in an order
that satisfies the foreign keys on import (threads, messages, runs, steps, the actor's
prices, LLM calls, artifacts, LangGraph store items, embeddings, score configs, scores,
datasets, dataset items, experiments), each read through a server-side cursor so memory
stays flat however large the export. Columns come from the ORM tables, so a column added
by a later revision is exported without touching this module; values are JSON-native
(UUIDs and decimals as strings, timestamps in ISO 8601 with their offset, vectors as float
lists). `chad_memory.archive_import` loads such a file.

An export holds everything its rows name that is the actor's: the prices its calls were
priced with come along, so it imports into an empty database. API keys are never
exported: they are credentials, not data.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Column, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from chad_memory.errors import InvalidInputError
from chad_memory.models import (
    Artifact,
    Dataset,
    DatasetItem,
    Embedding,
    Experiment,
    LLMCall,
    Message,
    ModelPrice,
    Run,
    Score,
    ScoreConfig,
    Step,
    StoreItem,
    Thread,
)
from chad_memory.schemas import UtcDatetime
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
        ("price", ModelPrice),
        ("llm_call", LLMCall),
        ("artifact", Artifact),
        ("store_item", StoreItem),
        ("embedding", Embedding),
        ("score_config", ScoreConfig),
        ("score", Score),
        ("dataset", Dataset),
        ("dataset_item", DatasetItem),
        ("experiment", Experiment),
    )
)
TABLES = dict(KINDS)
# Nullable links that may point outside an export: (kind, column) -> referenced kind.
OPTIONAL_LINKS: dict[tuple[str, str], str] = {
    ("run", "thread_id"): "thread",
    ("step", "parent_step_id"): "step",
    ("llm_call", "step_id"): "step",
    ("artifact", "step_id"): "step",
    ("llm_call", "price_id"): "price",
    ("embedding", "run_id"): "run",
    ("embedding", "step_id"): "step",
    ("dataset_item", "source_run_id"): "run",
    ("dataset_item", "source_step_id"): "step",
}


_INSTANT: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)


@dataclass(frozen=True)
class ExportScope:
    """Whose rows, and from when: runs created, threads updated, embeddings created since."""

    actor: str | None = None
    since: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is None:
            return
        if self.since.tzinfo is None:
            raise InvalidInputError("since must carry a time zone")
        # The API's timestamp rule: the edge instants (stored as +-infinity) and instants
        # that leave datetime's range in UTC are refused here, before any row is read.
        try:
            object.__setattr__(self, "since", _INSTANT.validate_python(self.since))
        except ValidationError as exc:
            raise InvalidInputError(f"since: {exc.errors()[0]['msg']}") from None


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
    elif kind == "price":
        # The actor's own prices, whatever `since` says: calls name them by price_id,
        # and an export must import. Operator-wide ones only in a whole export.
        prices = TABLES["price"]
        if scope.actor is not None:
            out.append(prices.c.actor == scope.actor)
    elif kind == "score":
        # The scores of the runs and threads exported: a score never arrives without
        # its target (its run, step or LLM call comes with the run).
        scores = TABLES["score"]
        in_runs = scores.c.run_id.in_(select(runs.c.id).where(*_conditions("run", scope)))
        in_threads = scores.c.thread_id.in_(
            select(threads.c.id).where(*_conditions("thread", scope))
        )
        out.append(in_runs | in_threads)
    elif kind in ("dataset_item", "experiment"):
        # With their dataset, whole: an item or experiment needs it.
        owned = select(TABLES["dataset"].c.id).where(*_conditions("dataset", scope))
        out.append(TABLES[kind].c.dataset_id.in_(owned))
    elif kind in ("dataset", "score_config"):
        table = TABLES[kind]
        if scope.actor is not None:
            out.append(table.c.actor == scope.actor)
        if since is not None:
            out.append(table.c.updated_at >= since)
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
    if isinstance(value, bytes):  # embeddings.content_hash
        return value.hex()
    return value


async def export_records(
    engine: AsyncEngine, scope: ExportScope | None = None
) -> AsyncGenerator[dict[str, Any]]:
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
