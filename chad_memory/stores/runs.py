"""Runs: creating, reading, updating, listing and deleting them; and `PostgresStore`,
which brings the run store's parts together (steps, children, stats: one module each)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

import asyncpg
from sqlalchemy import (
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from chad_memory.errors import (
    ConflictError,
    ForbiddenError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    InvalidInputError,
    NotFoundError,
)
from chad_memory.models import Run, Thread
from chad_memory.schemas import (
    ArtifactRecord,
    Page,
    RunCreate,
    RunFields,
    RunFilter,
    RunRecord,
    RunSummary,
    RunUpdate,
)
from chad_memory.stores.analytics import UsageMethods
from chad_memory.stores.base import Store, check_owner_of, check_thread_for_run, load_run
from chad_memory.stores.paging import (
    Keyset,
    keyset_page,
    keyset_shape,
    keyset_values,
    page_of,
    record_select,
)
from chad_memory.stores.run_children import ChildMethods
from chad_memory.stores.run_filters import (
    count_shape,
    count_statement,
    filter_conditions,
    filter_names,
    filter_values,
    run_conditions,
)
from chad_memory.stores.run_page import PageMethods, artifacts_of_run
from chad_memory.stores.run_stats import StatsMethods
from chad_memory.stores.statements import DriverStatement
from chad_memory.stores.steps import StepMethods
from chad_memory.stores.transactions import (
    driver_read,
    driver_transaction,
    read,
    retried,
    transaction,
)
from chad_memory.vocabulary import TERMINAL, TRANSITIONS

__all__ = ["TERMINAL", "TRANSITIONS", "PostgresStore", "RunCreation", "idempotency_lock_id"]

# Columns an upsert by id may overwrite: what a client may say about a run (RunFields),
# never the owner or the idempotency key. A new field there is written with no edit here.
_RUN_WRITABLE = tuple(RunFields.model_fields)
RUNS = Keyset("runs", (Run.created_at, Run.id), descending=True)


class RunCreation(NamedTuple):
    """What `create_run` did: `replayed` is True when an idempotent retry found the run."""

    run: RunRecord
    replayed: bool


def idempotency_lock_id(actor: str, key: str) -> int:
    """The advisory-lock id for (actor, key): 64 bits of SHA-256, as PostgreSQL's bigint.

    NUL cannot occur in either (check_text), so the separator keeps pairs distinct.
    """
    digest = hashlib.sha256(f"{actor}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def status_stamps(
    status: str, started_at: datetime | None, completed_at: datetime | None
) -> dict[str, datetime]:
    """The timestamps a run in `status` is given, now, where it has none: started_at once
    it runs, completed_at once it ends. A run created running or finished gets the same
    as one that moves there (`update_run`)."""
    now = datetime.now(UTC)
    stamps = {}
    if status == "running" and started_at is None:
        stamps["started_at"] = now
    if status in TERMINAL and completed_at is None:
        stamps["completed_at"] = now
    return stamps


class RunMethods(Store):
    """The run rows themselves. Every method is one transaction."""

    @retried
    async def save_run(self, run: RunCreate) -> RunRecord:
        """Insert, or update the run with the same id (same actor only).

        A run carrying an idempotency key that this actor already used is returned as it
        was first stored, unchanged: retries of a create never make a second run (a
        concurrent one waits for the first to finish, then returns its run).
        """
        async with driver_transaction(self._db, "save_run") as conn:
            created = await _create(conn, run, None, upsert=True, wait=True)
        if not created.replayed:
            self._db.ingested("runs", 1)
        return created.run

    @retried
    async def create_run(self, run: RunCreate, *, fingerprint: str | None = None) -> RunCreation:
        """Insert a new run; with an idempotency key, a retry returns the first run instead.

        The replay is decided before anything else is checked: a retry answers the stored
        run even if, say, its thread has been deleted since. `fingerprint` (e.g. a
        SHA-256 of the request body) tells a true retry from a reused key: the same key
        with another fingerprint raises IdempotencyKeyReusedError. While another
        transaction holds the same (actor, key), IdempotencyInProgressError is raised at
        once rather than waiting: the caller's first request is still running.
        """
        async with driver_transaction(self._db, "create_run") as conn:
            created = await _create(conn, run, fingerprint, upsert=False, wait=False)
        if not created.replayed:
            self._db.ingested("runs", 1)
        return created

    @retried
    async def get_run(self, run_id: uuid.UUID, *, actor: str | None = None) -> RunRecord:
        """The run; with `actor`, ForbiddenError unless that actor owns it."""
        async with driver_read(self._db, "get_run") as conn:
            return await _run_record(conn, run_id, actor)

    @retried
    async def get_run_detail(
        self, run_id: uuid.UUID, *, actor: str | None = None
    ) -> tuple[RunRecord, list[ArtifactRecord]]:
        """The run and its artifacts (oldest first), in one statement."""
        async with driver_read(self._db, "get_run") as conn:
            row = await conn.fetchrow(_RUN_DETAIL_BY_ID.sql, run_id)
        check_owner_of("run", run_id, None if row is None else row["actor"], actor)
        assert row is not None
        values = _RUN_DETAIL_BY_ID.row(row)
        artifacts = [ArtifactRecord.model_validate(a) for a in values.pop("artifacts")]
        return RunRecord.model_validate(values), artifacts

    @retried
    async def check_owner(self, run_ids: Sequence[uuid.UUID], *, actor: str) -> None:
        """NotFoundError if any run is unknown, ForbiddenError if any is another actor's.

        One query for a whole batch, for callers that only reference runs (memory rows).
        """
        wanted = set(run_ids)
        if not wanted:
            return
        stmt = select(Run.id, Run.actor).where(Run.id.in_(wanted))
        async with read(self._db, "check_owner") as conn:
            owners = {row.id: row.actor for row in await conn.execute(stmt)}
        missing = sorted(str(i) for i in wanted - owners.keys())
        if missing:
            raise NotFoundError(f"run {', '.join(missing)} not found")
        foreign = sorted(str(i) for i, owner in owners.items() if owner != actor)
        if foreign:
            raise ForbiddenError(f"run {', '.join(foreign)} belongs to another actor")

    @retried
    async def update_run(
        self, run_id: uuid.UUID, changes: RunUpdate, *, actor: str | None = None
    ) -> RunRecord:
        """Apply the fields set in `changes`; status moves only forward (see TRANSITIONS).

        Moving to `running` stamps started_at and to a terminal status stamps
        completed_at, unless the caller gives them. A new thread_id must name a thread
        of the run's actor.
        """
        data = changes.model_dump(exclude_unset=True)
        if "metadata" in data:
            data["metadata_"] = data.pop("metadata")
        async with transaction(self._db, "update_run") as session:
            row = await load_run(session, run_id, actor, lock=True)
            await check_thread_for_run(session, data.get("thread_id"), row.actor)
            new_status = data.get("status")
            if new_status is not None:
                if new_status not in TRANSITIONS[row.status]:
                    raise ConflictError(
                        f"run {run_id} cannot move from {row.status} to {new_status}"
                    )
                stamps = status_stamps(new_status, row.started_at, row.completed_at)
                for key, value in stamps.items():
                    data.setdefault(key, value)
            for key, value in data.items():
                setattr(row, key, value)
            row.updated_at = func.now()
            await session.flush()
            await session.refresh(row)
            return RunRecord.model_validate(row)

    @retried
    async def list_runs(
        self,
        filters: RunFilter | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
    ) -> Page[RunRecord]:
        """Newest first. `cursor` (a previous page's next_cursor) is stable under inserts."""
        stmt = record_select(Run, RunRecord).where(*run_conditions(filters))
        async with read(self._db, "list_runs") as conn:
            return await keyset_page(
                conn,
                stmt,
                RUNS,
                RunRecord,
                self._cursors,
                limit=limit,
                cursor=cursor,
                offset=offset,
            )

    @retried
    async def list_run_summaries(
        self,
        filters: RunFilter | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        with_total: bool = False,
        total_cap: int | None = None,
    ) -> Page[RunSummary]:
        """Like `list_runs`, without reading the payload columns (they can be megabytes).

        With `with_total`, the page also carries `count_runs(filters, cap=total_cap)`,
        counted on the same connection. Both statements are compiled once per shape
        (which filters are set, cursor or offset) and sent straight to the driver.
        """
        if total_cap is not None and total_cap < 0:
            raise InvalidInputError("cap must not be negative")
        values = keyset_values(RUNS, self._cursors, limit=limit, cursor=cursor, offset=offset)
        values.update(filter_values(filters))
        names = filter_names(filters)
        page = _summary_page(names, cursor is not None, offset > 0)
        async with driver_read(self._db, "list_runs") as conn:
            rows = await conn.fetch(page.sql, *page.args(values))
            total = None
            if with_total:
                counter = _summary_count(names, total_cap is not None)
                if total_cap is not None:
                    values["count_cap"] = total_cap + 1
                total = int(await conn.fetchval(counter.sql, *counter.args(values)))
        items = [RunSummary.model_validate(page.row(r)) for r in rows]
        return page_of(items, RUNS, self._cursors, limit, total)

    @retried
    async def count_runs(self, filters: RunFilter | None = None, *, cap: int | None = None) -> int:
        """How many runs match. Exact counting reads every match (O(n)); with `cap`, at
        most cap + 1 rows are read, so a result above `cap` means "more than cap" and
        costs the same at any size.
        """
        stmt = count_statement(filters, cap)
        async with read(self._db, "count_runs") as conn:
            return int(await conn.scalar(stmt) or 0)

    @retried
    async def delete_run(self, run_id: uuid.UUID, *, actor: str | None = None) -> None:
        """Delete a run; its steps, artifacts and LLM calls go with it (ON DELETE CASCADE)."""
        async with transaction(self._db, "delete_run") as session:
            if actor is not None:
                await load_run(session, run_id, actor)
            deleted = await session.scalar(delete(Run).where(Run.id == run_id).returning(Run.id))
            if deleted is None:
                raise NotFoundError(f"run {run_id} not found")


_RUN_SELECT = record_select(Run, RunRecord)
_RUN_RETURNING = tuple(_RUN_SELECT.selected_columns)
_RUN_JSON = tuple(c.key for c in Run.__table__.c if isinstance(c.type, JSONB))
_RUN_BY_ID = DriverStatement.of(_RUN_SELECT.where(Run.id == bindparam("run_id")))


_RUN_DETAIL_BY_ID = DriverStatement.of(
    _RUN_SELECT.add_columns(artifacts_of_run().label("artifacts")).where(
        Run.id == bindparam("run_id")
    )
)
# Every column a client or the store sets when creating a run; the rest are the server's.
_INSERT_COLUMNS = (
    "id",
    "actor",
    "idempotency_key",
    "idempotency_fingerprint",
    *_RUN_WRITABLE,
)
_insert = pg_insert(Run).values({name: bindparam(name) for name in _INSERT_COLUMNS})
_INSERT_RUN = DriverStatement.of(_insert.returning(*_RUN_RETURNING), _RUN_JSON, _RUN_RETURNING)
_UPSERT_RUN = DriverStatement.of(
    _insert.on_conflict_do_update(
        index_elements=[Run.id],
        set_={
            **{name: _insert.excluded[name] for name in _INSERT_COLUMNS[4:]},
            "updated_at": func.now(),
        },
        where=Run.actor == _insert.excluded.actor,
    ).returning(*_RUN_RETURNING),
    _RUN_JSON,
    _RUN_RETURNING,
)
_REPLAY = DriverStatement.of(
    select(Run.idempotency_fingerprint, *_RUN_RETURNING).where(
        Run.actor == bindparam("actor"), Run.idempotency_key == bindparam("key")
    )
)
_THREAD_OWNER = DriverStatement.of(select(Thread.actor).where(Thread.id == bindparam("thread_id")))


@lru_cache(maxsize=256)
def _summary_page(names: tuple[str, ...], after: bool, offset: bool) -> DriverStatement:
    stmt = record_select(Run, RunSummary).where(*filter_conditions(names))
    return DriverStatement.of(keyset_shape(stmt, RUNS, after=after, offset=offset))


@lru_cache(maxsize=256)
def _summary_count(names: tuple[str, ...], capped: bool) -> DriverStatement:
    return DriverStatement.of(count_shape(names, capped))


async def _run_record(conn: asyncpg.Connection, run_id: uuid.UUID, actor: str | None) -> RunRecord:
    row = await conn.fetchrow(_RUN_BY_ID.sql, run_id)
    check_owner_of("run", run_id, None if row is None else row["actor"], actor)
    assert row is not None
    return RunRecord.model_validate(_RUN_BY_ID.row(row))


async def _create(
    conn: asyncpg.Connection,
    run: RunCreate,
    fingerprint: str | None,
    *,
    upsert: bool,
    wait: bool,
) -> RunCreation:
    """The one way a run is created (save_run and create_run both come here).

    With an idempotency key: take the (actor, key) advisory lock (waiting for it, or
    IdempotencyInProgressError at once), then replay the stored run if there is one,
    before any other check. Then the thread rule, then the insert (or, with `upsert`,
    the update of the same actor's run with that id).
    """
    key = run.idempotency_key
    if key is not None:
        lock_id = idempotency_lock_id(run.actor, key)
        if wait:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id)
        elif not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", lock_id):
            raise IdempotencyInProgressError(key)
        row = await conn.fetchrow(_REPLAY.sql, *_REPLAY.args({"actor": run.actor, "key": key}))
        if row is not None:
            stored = row["idempotency_fingerprint"]
            if fingerprint is not None and stored is not None and stored != fingerprint:
                raise IdempotencyKeyReusedError(key)
            replay = _REPLAY.row(row)
            del replay["idempotency_fingerprint"]
            return RunCreation(RunRecord.model_validate(replay), replayed=True)
    if run.thread_id is not None:
        owner = await conn.fetchval(_THREAD_OWNER.sql, run.thread_id)
        check_owner_of("thread", run.thread_id, owner, run.actor)
    values = run.model_dump()
    values.update(status_stamps(values["status"], values["started_at"], values["completed_at"]))
    if values["id"] is None:
        values["id"] = uuid.uuid4()
    values["idempotency_fingerprint"] = fingerprint
    statement = _UPSERT_RUN if upsert else _INSERT_RUN
    inserted = await conn.fetchrow(statement.sql, *statement.args(values))
    if inserted is None:
        raise ConflictError(f"run {values['id']} exists and belongs to another actor")
    return RunCreation(RunRecord.model_validate(statement.row(inserted)), replayed=False)


class PostgresStore(RunMethods, StepMethods, ChildMethods, StatsMethods, UsageMethods, PageMethods):
    """Runs and everything hanging off them. Every method is one transaction.

    Methods that take `actor=` check, inside that transaction, that the run is that
    actor's (NotFoundError / ForbiddenError); without it they act as a trusted caller.
    """
