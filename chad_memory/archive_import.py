"""Import: an export file loaded into this database for one actor, every line checked.

An import is a door into the database like the API, so it keeps the API's rules:

- Every row is validated by the model the API validates that kind with (`RunCreate`,
  `StepCreate`, `LLMCallCreate`, ...), widened by the columns only the server sets
  (id, created_at, cost_source, ...) under the same timestamp, text and actor rules. A
  string as `tags`, an instant stored as `infinity`, an empty actor, a numeric id: all
  refused, as the API refuses them.
- It acts for one actor (`actor=`): every row must be that actor's, and every parent it
  names (the run of a step, the thread of a message, a linked thread, step or price)
  must be that actor's, in the file or already in the database. A row whose id exists
  as another actor's is refused, not "already present". `actor=None` is an operator
  restoring a whole database: each row keeps its own actor, and parents must still
  belong to the row's owner.
- Any refusal names the line and the reason (`InvalidInputError`), and the whole file is
  one transaction, so nothing of a refused file is written.
- Two different rows with the same id are an error naming both lines; the same row
  twice is counted once. One small entry per row is kept for this (about 100 bytes).

Repeats are skipped with `ON CONFLICT (id) DO NOTHING`: importing the same file twice,
or one that overlaps what the database holds for that actor, changes nothing. A nullable
link to a row the file does not carry (an export `--since` a date can leave a run
pointing at an older thread) is stored as NULL and counted as `unlinked`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model
from sqlalchemy import Table, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import UUID as UUIDType
from sqlalchemy.types import DateTime, Float, Integer, LargeBinary

from chad_memory.archive import (
    BATCH_ROWS,
    FORMAT_VERSION,
    KINDS,
    OPTIONAL_LINKS,
    TABLES,
    Progress,
    TransferCounts,
    _open_text,
)
from chad_memory.errors import InvalidInputError
from chad_memory.models import COST_SOURCES, EMBEDDING_DIM
from chad_memory.schemas import (
    Actor,
    ArtifactCreate,
    EmbeddingCreate,
    JsonValue,
    LLMCallCreate,
    MessageCreate,
    ModelPriceCreate,
    RunCreate,
    SafeText,
    StepCreate,
    ThreadCreate,
    UtcDatetime,
)
from chad_memory.stores.memory_writes import content_hash
from chad_memory.stores.transactions import translated_errors
from chad_memory.validation import check_embedding, quoted

# The API's model for each kind; a kind without one (LangGraph store items) is checked
# column by column with the same field types.
API_MODELS: dict[str, type[BaseModel]] = {
    "thread": ThreadCreate,
    "message": MessageCreate,
    "run": RunCreate,
    "step": StepCreate,
    "price": ModelPriceCreate,
    "llm_call": LLMCallCreate,
    "artifact": ArtifactCreate,
    "embedding": EmbeddingCreate,
}
# The parent every row of a kind needs, and whose owner owns the row.
REQUIRED_PARENTS: dict[str, tuple[str, str]] = {
    "message": ("thread_id", "thread"),
    "step": ("run_id", "run"),
    "llm_call": ("run_id", "run"),
    "artifact": ("run_id", "run"),
    "dataset_item": ("dataset_id", "dataset"),
    "experiment": ("dataset_id", "dataset"),
}
# Operator-wide prices (actor null) apply to every actor: a call may name one.
_SHARED_OWNER = "price"


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _from_hex(value: Any) -> Any:
    return bytes.fromhex(value) if isinstance(value, str) else value


def _column_type(table: Table, name: str) -> Any:
    """The validating type of a column the API's model does not have."""
    column = table.c[name]
    if name == "actor":
        kind: Any = Actor
    elif name == "cost_source":
        kind = Literal[COST_SOURCES]
    elif isinstance(column.type, UUIDType):
        kind = uuid.UUID
    elif isinstance(column.type, DateTime):
        kind = UtcDatetime
    elif isinstance(column.type, Integer):
        kind = Annotated[int, Field(strict=True)]
    elif isinstance(column.type, Float):
        kind = Annotated[float, Field(strict=True, allow_inf_nan=False)]
    elif isinstance(column.type, JSONB):
        kind = JsonValue
    elif isinstance(column.type, LargeBinary):  # embeddings.content_hash, hex in a file
        kind = Annotated[bytes, BeforeValidator(_from_hex)]
    else:
        kind = SafeText
    return kind | None if column.nullable else kind


def _row_model(kind: str, table: Table) -> type[BaseModel]:
    """The API's model for the kind, plus the server-set columns; `id` required."""
    base = API_MODELS.get(kind, _Row)
    extra: dict[str, Any] = {
        column.name: (_column_type(table, column.name), None)
        for column in table.c
        if column.name not in base.model_fields
    }
    extra["id"] = (_column_type(table, "id"), ...)
    model: type[BaseModel] = create_model(
        f"Imported{kind.title().replace('_', '')}", __base__=base, **extra
    )
    return model


ROW_MODELS = {kind: _row_model(kind, table) for kind, table in KINDS}


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "row"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


@dataclass
class _Line:
    number: int
    kind: str
    data: dict[str, Any]


def read_records(path: Path) -> Iterator[_Line]:
    """The rows of an export file, each with its line number; a line that is not a
    record of a known kind is refused with its number."""
    with _open_text(path, "r") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deep"
                raise InvalidInputError(f"line {number}: not JSON ({reason})") from None
            if not isinstance(record, dict) or not isinstance(record.get("data"), dict):
                raise InvalidInputError(f"line {number}: expected {{'kind': ..., 'data': {{}}}}")
            kind = record.get("kind")
            if kind == "header":
                if record["data"].get("format") != FORMAT_VERSION:
                    raise InvalidInputError(
                        f"line {number}: export format {quoted(str(record['data'].get('format')))}"
                        f" is not {FORMAT_VERSION}"
                    )
                continue
            if not isinstance(kind, str) or kind not in TABLES:
                raise InvalidInputError(f"line {number}: unknown kind {quoted(str(kind))}")
            yield _Line(number, kind, record["data"])


class _Importer:
    """Checks and inserts batches of one kind on one connection."""

    def __init__(self, conn: AsyncConnection, counts: TransferCounts, actor: str | None):
        self.conn = conn
        self.counts = counts
        self.actor = actor
        self.deferred_parents = False
        # (kind, id) -> (digest of the row as sent, its line): conflicting repeats.
        self.seen: dict[tuple[str, Hashable], tuple[int, int]] = {}

    def _validate(self, line: _Line) -> dict[str, Any]:
        table = TABLES[line.kind]
        try:
            row = ROW_MODELS[line.kind].model_validate(line.data)
        except ValidationError as exc:
            raise InvalidInputError(f"line {line.number}: {line.kind}: {_reason(exc)}") from None
        values = {name: getattr(row, name) for name in row.model_fields_set}
        if line.kind == "embedding" and values.get("embedding") is not None:
            # As PgVectorStore checks it: the schema's dimension, storable as float4.
            try:
                values["embedding"] = check_embedding(values["embedding"], EMBEDDING_DIM)
            except InvalidInputError as exc:
                raise InvalidInputError(f"line {line.number}: embedding: {exc}") from None
        stated = values.get("content_hash")
        # The dedup index trusts it: it must be the hash the store would compute.
        if (
            line.kind == "embedding"
            and stated is not None
            and (values.get("content") is None or stated != content_hash(values["content"]))
        ):
            raise InvalidInputError(
                f"line {line.number}: embedding: content_hash is not its content's hash"
            )
        if line.kind == "llm_call" and values.get("started_at") is None:
            # An export from before calls had a start time: they started when stored.
            values.pop("started_at", None)
            if values.get("created_at") is not None:
                values["started_at"] = values["created_at"]
        for name, value in values.items():
            if value is None and not table.c[name].nullable:
                raise InvalidInputError(f"line {line.number}: {line.kind}: {name} may not be null")
        missing = [
            c.name
            for c in table.c
            if not c.nullable
            and c.server_default is None
            and c.default is None
            and c.name not in values
        ]
        if missing:
            raise InvalidInputError(
                f"line {line.number}: {line.kind}: missing {', '.join(missing)}"
            )
        return values

    def _first_of(self, line: _Line, values: dict[str, Any]) -> bool:
        """True for a row's first line; False for an identical repeat; an error naming
        both lines for a different row with the same id."""
        key = (line.kind, values["id"])
        digest = hash(json.dumps(line.data, sort_keys=True, default=str))
        seen = self.seen.get(key)
        if seen is None:
            self.seen[key] = (digest, line.number)
            return True
        if seen[0] != digest:
            raise InvalidInputError(
                f"lines {seen[1]} and {line.number}: two different {line.kind} rows "
                f"with id {values['id']}"
            )
        return False

    async def _owners(self, kind: str, ids: set[Any]) -> dict[Any, str | None]:
        """Who owns each of these rows in the database (this transaction included)."""
        if not ids:
            return {}
        table = TABLES[kind]
        if "actor" in table.c:
            query = select(table.c.id, table.c.actor)
        else:
            parent_column, parent_kind = REQUIRED_PARENTS[kind]
            parent = TABLES[parent_kind]
            query = select(table.c.id, parent.c.actor).join(
                parent, parent.c.id == table.c[parent_column]
            )
        found = await self.conn.execute(query.where(table.c.id.in_(ids)))
        return {row[0]: row[1] for row in found}

    async def flush(self, kind: str, batch: list[_Line]) -> None:
        if not batch:
            return
        table = TABLES[kind]
        lines: list[_Line] = []
        rows: list[dict[str, Any]] = []
        for line in batch:
            values = self._validate(line)
            if self._first_of(line, values):
                lines.append(line)
                rows.append(values)
            else:
                self.counts.skipped += 1
        owners = await self._row_owners(kind, lines, rows)
        await self._check_links(kind, lines, rows, owners)
        existing = await self._owners(kind, {row["id"] for row in rows})
        for line, row, owner in zip(lines, rows, owners, strict=True):
            if row["id"] in existing and existing[row["id"]] != owner:
                raise InvalidInputError(
                    f"line {line.number}: {kind} {row['id']} exists and belongs to another actor"
                )
        # One INSERT per set of columns present (an export's rows all have every one).
        shapes: dict[frozenset[str], list[dict[str, Any]]] = {}
        for row in rows:
            shapes.setdefault(frozenset(row), []).append(row)
        for same in shapes.values():
            statement = pg_insert(table).values(same)
            if kind == "price":  # the same price key under another id is already there too
                statement = statement.on_conflict_do_nothing()
            else:
                statement = statement.on_conflict_do_nothing(index_elements=["id"])
            inserted = await self.conn.execute(statement.returning(table.c.id))
            done = len(inserted.all())
            self.counts.rows[kind] += done
            self.counts.skipped += len(same) - done

    async def _row_owners(
        self, kind: str, lines: list[_Line], rows: list[dict[str, Any]]
    ) -> list[str | None]:
        """Each row's owner: its actor, or its parent's; in one actor's import, that actor."""
        if "actor" in TABLES[kind].c:
            owners: list[str | None] = [row.get("actor") for row in rows]
        else:
            column, parent_kind = REQUIRED_PARENTS[kind]
            found = await self._owners(parent_kind, {row[column] for row in rows})
            owners = []
            for line, row in zip(lines, rows, strict=True):
                if row[column] not in found:
                    raise InvalidInputError(
                        f"line {line.number}: {kind}: {parent_kind} {row[column]} is neither "
                        "in the file nor in the database"
                    )
                owners.append(found[row[column]])
        if self.actor is not None:
            for line, owner in zip(lines, owners, strict=True):
                if owner != self.actor:
                    raise InvalidInputError(
                        f"line {line.number}: {kind} belongs to another actor than "
                        f"{quoted(self.actor)}, the one importing"
                    )
        return owners

    async def _check_links(
        self, kind: str, lines: list[_Line], rows: list[dict[str, Any]], owners: list[str | None]
    ) -> None:
        """Parents named by a row belong to its owner; links to rows that are nowhere
        become NULL (a step's parent may still come later in the file)."""
        batch_owner = dict(zip((row["id"] for row in rows), owners, strict=True))
        links = [(kind, column, target) for (k, column), target in OPTIONAL_LINKS.items()]
        links = [link for link in links if link[0] == kind]
        if kind in REQUIRED_PARENTS and "actor" in TABLES[kind].c:
            column, target = REQUIRED_PARENTS[kind]
            links.append((kind, column, target))
        for _, column, target in links:
            wanted = {row[column] for row in rows if row.get(column) is not None}
            found = await self._owners(
                target, wanted - set(batch_owner) if target == kind else wanted
            )
            if target == kind:
                found |= {i: batch_owner[i] for i in wanted & set(batch_owner)}
            for line, row, owner in zip(lines, rows, owners, strict=True):
                ref = row.get(column)
                if ref is None:
                    continue
                if ref not in found:
                    if (column, target) == REQUIRED_PARENTS.get(kind):
                        raise InvalidInputError(
                            f"line {line.number}: {kind}: {target} {ref} is neither in the "
                            "file nor in the database"
                        )
                    if kind == "step" and column == "parent_step_id":
                        await self._defer_parent(row["id"], ref)
                    else:
                        self.counts.unlinked += 1
                    row[column] = None
                elif found[ref] != owner and not (target == _SHARED_OWNER and found[ref] is None):
                    raise InvalidInputError(
                        f"line {line.number}: {kind}: {column} names another actor's {target}"
                    )

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
        """Link steps to parents that came later in the file, within one owner's runs."""
        if not self.deferred_parents:
            return
        linked = await self.conn.execute(
            text(
                "UPDATE steps SET parent_step_id = p.parent FROM import_step_parents p "
                "JOIN steps parent ON parent.id = p.parent "
                "JOIN runs parent_run ON parent_run.id = parent.run_id "
                "WHERE steps.id = p.id AND steps.parent_step_id IS NULL "
                "AND parent_run.actor = (SELECT actor FROM runs WHERE id = steps.run_id)"
            )
        )
        total = await self.conn.scalar(text("SELECT count(*) FROM import_step_parents"))
        self.counts.unlinked += int(total or 0) - (linked.rowcount or 0)


async def import_file(
    engine: AsyncEngine,
    path: Path,
    *,
    actor: str | None,
    progress: Progress | None = None,
) -> TransferCounts:
    """Load an export into this database for `actor` (None: every row as its own actor,
    for an operator's whole-database restore) in one transaction; ids are kept, repeats
    skipped. A refused line leaves the database as it was."""
    counts = TransferCounts()
    with translated_errors("import"):
        async with engine.begin() as conn:
            importer = _Importer(conn, counts, actor)
            kind: str | None = None
            batch: list[_Line] = []
            order = [k for k, _ in KINDS]
            for line in read_records(path):
                if line.kind != kind:
                    if kind is not None and order.index(line.kind) < order.index(kind):
                        raise InvalidInputError(
                            f"line {line.number}: {line.kind} rows after {kind} rows: "
                            "not an export's order"
                        )
                    if kind is not None:
                        await importer.flush(kind, batch)
                    kind, batch = line.kind, []
                batch.append(line)
                if len(batch) >= BATCH_ROWS:
                    await importer.flush(kind, batch)
                    batch = []
                    if progress is not None:
                        progress(counts)
            if kind is not None:
                await importer.flush(kind, batch)
            await importer.finish()
    return counts
