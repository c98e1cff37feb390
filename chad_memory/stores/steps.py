"""Steps: the batch insert, and the step methods of PostgresStore.

Steps arrive in the largest numbers, so they go in through one `INSERT ... SELECT FROM
unnest(arrays)` statement sent straight to asyncpg: the same prepared statement for every
batch size and no ORM objects. The run's owner and the parent steps are checked by the
same statement (rows that fail either are not inserted), so the common case costs BEGIN,
one statement and COMMIT; only a refusal reads more, to say why. It is the one step
insert: the API's and the library's batches and OTLP's spans (`stores/traces.py`) all go
through `insert_steps`. A step whose id is already stored is skipped (a re-sent span);
for a caller that chose the id, that is a conflict (`_refusal`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import Select, select

from chad_memory.errors import ConflictError, InvalidInputError
from chad_memory.models import Run, Step
from chad_memory.schemas import Page, StepCreate, StepFields, StepRecord
from chad_memory.stores.base import Store, check_owner_of, check_run_owner, unknown_refs
from chad_memory.stores.limits import check_batch
from chad_memory.stores.paging import Keyset, keyset_page, record_select
from chad_memory.stores.transactions import driver_transaction, read, retried

# Columns in table order with their array types; created_at is the server's.
_STEP_ARRAYS = (
    ("id", "uuid"),
    ("run_id", "uuid"),
    ("step_index", "int4"),
    ("parent_step_id", "uuid"),
    ("name", "text"),
    ("type", "text"),
    ("status", "text"),
    ("input", "jsonb"),
    ("output", "jsonb"),
    ("error", "text"),
    ("started_at", "timestamptz"),
    ("completed_at", "timestamptz"),
    ("duration_ms", "float8"),
    ("metadata", "jsonb"),
)
_ACTOR_PARAM = len(_STEP_ARRAYS) + 1
INSERT_STEPS_SQL = (
    f"INSERT INTO steps ({', '.join(name for name, _ in _STEP_ARRAYS)}) "
    "SELECT * FROM unnest("
    + ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(_STEP_ARRAYS, start=1))
    + ") AS u("
    + ", ".join(name for name, _ in _STEP_ARRAYS)
    + ") WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = u.run_id"
    f" AND (${_ACTOR_PARAM}::text IS NULL OR r.actor = ${_ACTOR_PARAM}))"
    " AND (u.parent_step_id IS NULL OR u.parent_step_id = ANY($1::uuid[])"
    " OR EXISTS (SELECT 1 FROM steps s WHERE s.id = u.parent_step_id AND s.run_id = u.run_id))"
    " ON CONFLICT (id) DO NOTHING RETURNING id, created_at"
)
_STEP_FIELDS = tuple(StepRecord.model_fields)
STEPS = Keyset("steps", (Step.step_index, Step.id), descending=False)


def steps_of(run_id: uuid.UUID) -> Select[Any]:
    return record_select(Step, StepRecord).where(Step.run_id == run_id)


_JSON_COLUMNS = tuple(name for name, kind in _STEP_ARRAYS if kind == "jsonb")


def step_row(step: StepFields, **given: Any) -> tuple[Any, ...]:
    """One row for `step_arrays`: the step's fields in column order, `given` first (the
    id, run and anything the caller decides; jsonb columns always, as JSON text)."""
    missing = [c for c in _JSON_COLUMNS if c not in given]
    assert not missing, f"jsonb columns are given as JSON text: {missing}"
    return tuple(given[name] if name in given else getattr(step, name) for name, _ in _STEP_ARRAYS)


def step_arrays(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """`step_row`s as `insert_steps` takes them: one array per column."""
    return [list(column) for column in zip(*rows, strict=True)]


async def insert_steps(
    conn: asyncpg.Connection, arrays: Sequence[Sequence[Any]], actor: str | None
) -> list[asyncpg.Record]:
    """Insert steps given as one array per column (`_STEP_ARRAYS` order; jsonb columns as
    JSON text): (id, created_at) of the rows stored. A row is skipped when its run is
    unknown or not `actor`'s, its parent is neither in the batch nor stored in its run, or
    its id is already stored."""
    assert len(arrays) == len(_STEP_ARRAYS)
    rows: list[asyncpg.Record] = await conn.fetch(INSERT_STEPS_SQL, *arrays, actor)
    return rows


def _json_text(value: Any) -> str:
    """JSON for a jsonb parameter; Python None is stored as JSON null."""
    if value is None:
        return "null"
    if isinstance(value, dict) and not value:
        return "{}"
    return json.dumps(value)


def _step_record(step: StepCreate, step_id: uuid.UUID, created_at: datetime) -> StepRecord:
    """The stored step: the validated input as written, plus what the database assigned.

    Built without validating again (the input already was) and without reading the
    payloads back, through pydantic's public `model_construct`. StepCreate holds every
    StepRecord field but created_at (tests/test_store_steps_batch.py checks that). JSON
    values are the caller's objects, as given: a later read returns them as jsonb stored
    them (equal, though a tuple comes back as a list).
    """
    values = {"id": step_id, "run_id": step.run_id, **step.__dict__}
    values["id"] = step_id
    values["created_at"] = created_at
    return StepRecord.model_construct(_fields_set=set(_STEP_FIELDS), **values)


def _check_batch_parents(steps: Sequence[StepCreate], ids: Sequence[uuid.UUID]) -> None:
    """A parent given in the same batch must be a step of the same run."""
    run_of = {step_id: s.run_id for s, step_id in zip(steps, ids, strict=True)}
    for s in steps:
        parent = s.parent_step_id
        if parent is not None and parent in run_of and run_of[parent] != s.run_id:
            unknown_refs(s.run_id, [parent])


class StepMethods(Store):
    async def save_step(self, step: StepCreate, *, actor: str | None = None) -> StepRecord:
        return (await self.save_steps([step], actor=actor))[0]

    @retried
    async def save_steps(
        self, steps: Sequence[StepCreate], *, actor: str | None = None
    ) -> list[StepRecord]:
        """Insert steps in one statement; all land or none do. Order of input is kept.

        Each step's run must exist (NotFoundError) and, with `actor`, be that actor's
        (ForbiddenError); a `parent_step_id` must name a step of the same run, stored or
        in this batch (InvalidInputError).
        """
        if not steps:
            return []
        check_batch(steps, "steps")
        ids = [s.id or uuid.uuid4() for s in steps]
        _check_batch_parents(steps, ids)
        arrays = step_arrays(
            [
                step_row(s, id=i, **{c: _json_text(getattr(s, c)) for c in _JSON_COLUMNS})
                for s, i in zip(steps, ids, strict=True)
            ]
        )
        async with driver_transaction(self._db, "save_steps") as conn:
            rows = await insert_steps(conn, arrays, actor)
            if len(rows) < len(steps):
                await _refusal(conn, steps, ids, {row[0] for row in rows}, actor)
        # RETURNING order is not promised; the ids (ours, unique) put rows back in order.
        created = {row[0]: row[1] for row in rows}
        self._db.ingested("steps", len(rows))
        return [_step_record(s, i, created[i]) for s, i in zip(steps, ids, strict=True)]

    @retried
    async def get_step_ids(self, run_id: uuid.UUID) -> set[uuid.UUID]:
        """The ids of a run's steps, to check references (step_id, parent_step_id) cheaply."""
        async with read(self._db, "get_step_ids") as conn:
            return set(await conn.scalars(select(Step.id).where(Step.run_id == run_id)))

    @retried
    async def get_steps(self, run_id: uuid.UUID, *, actor: str | None = None) -> list[StepRecord]:
        """All of a run's steps by step_index (`list_steps` pages through them)."""
        stmt = STEPS.order(steps_of(run_id))
        async with read(self._db, "get_steps") as conn:
            if actor is not None:
                await check_run_owner(conn, run_id, actor)
            return [StepRecord.model_validate(dict(r._mapping)) for r in await conn.execute(stmt)]

    @retried
    async def list_steps(
        self,
        run_id: uuid.UUID,
        *,
        actor: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[StepRecord]:
        """A run's steps by step_index, one page at a time."""
        async with read(self._db, "list_steps") as conn:
            await check_run_owner(conn, run_id, actor)
            return await keyset_page(
                conn, steps_of(run_id), STEPS, StepRecord, self._cursors, limit=limit, cursor=cursor
            )


async def _refusal(
    conn: Any,
    steps: Sequence[StepCreate],
    ids: Sequence[uuid.UUID],
    inserted: set[uuid.UUID],
    actor: str | None,
) -> None:
    """Why the insert skipped rows: an unknown or foreign run, an id already taken (or
    given twice), else a bad parent."""
    run_ids = sorted({s.run_id for s in steps})
    owners = dict(
        await conn.fetch(
            f"SELECT id, actor FROM {Run.__tablename__} WHERE id = ANY($1::uuid[])", run_ids
        )
    )
    for run_id in run_ids:
        check_owner_of("run", run_id, owners.get(run_id), actor)
    skipped = sorted(set(ids) - inserted)
    taken = await conn.fetchval("SELECT count(*) FROM steps WHERE id = ANY($1::uuid[])", skipped)
    if taken or len(set(ids)) < len(ids):
        raise ConflictError("save_steps: the id is already taken")
    in_batch = set(ids)
    parents = sorted({s.parent_step_id for s in steps if s.parent_step_id is not None})
    found = {
        (row[0], row[1])
        for row in await conn.fetch(
            "SELECT id, run_id FROM steps WHERE id = ANY($1::uuid[])", parents
        )
    }
    for s in steps:
        parent = s.parent_step_id
        if parent is not None and parent not in in_batch and (parent, s.run_id) not in found:
            unknown_refs(s.run_id, [s.parent_step_id])
    raise InvalidInputError("steps were refused")  # unreachable unless rows changed meanwhile
