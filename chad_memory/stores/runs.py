"""Runs: creating, reading, updating, listing and deleting them; and `PostgresStore`,
which brings the run store's parts together (steps, children, stats: one module each)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from chad_memory.errors import (
    ConflictError,
    ForbiddenError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    NotFoundError,
)
from chad_memory.models import Artifact, Run
from chad_memory.schemas import (
    ArtifactRecord,
    Page,
    RunCreate,
    RunFilter,
    RunRecord,
    RunSummary,
    RunUpdate,
)
from chad_memory.stores.base import Store, check_thread_for_run, load_run
from chad_memory.stores.limits import row_values
from chad_memory.stores.paging import Keyset, keyset_page
from chad_memory.stores.run_children import ARTIFACTS, ChildMethods
from chad_memory.stores.run_filters import count_statement, run_conditions
from chad_memory.stores.run_stats import StatsMethods
from chad_memory.stores.steps import StepMethods
from chad_memory.stores.transactions import retried, transaction
from chad_memory.vocabulary import TERMINAL, TRANSITIONS

__all__ = ["TERMINAL", "TRANSITIONS", "PostgresStore", "RunCreation", "idempotency_lock_id"]

# Columns an upsert by id may overwrite (never the owner or the idempotency key).
_RUN_WRITABLE = (
    "name",
    "agent",
    "status",
    "trace_id",
    "thread_id",
    "request_payload",
    "result",
    "error",
    "metadata_",
    "tags",
    "started_at",
    "completed_at",
)
RUNS = Keyset("runs", (Run.created_at, Run.id), descending=True)

R = TypeVar("R", bound=RunSummary)
# What a summary reads: every column but the payloads, which can be megabytes.
_SUMMARY_LOAD = load_only(
    *(getattr(Run, "metadata_" if k == "metadata" else k) for k in RunSummary.model_fields),
    raiseload=True,
)


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


def _stamped(values: dict[str, Any]) -> dict[str, Any]:
    """A run created already running or finished gets the timestamps update_run gives."""
    now = datetime.now(UTC)
    if values["status"] == "running" and values["started_at"] is None:
        values["started_at"] = now
    if values["status"] in TERMINAL and values["completed_at"] is None:
        values["completed_at"] = now
    return values


class RunMethods(Store):
    """The run rows themselves. Every method is one transaction."""

    @retried
    async def save_run(self, run: RunCreate) -> RunRecord:
        """Insert, or update the run with the same id (same actor only).

        A run carrying an idempotency key that this actor already used is returned as it
        was first stored, unchanged: retries of a create never make a second run (a
        concurrent one waits for the first to finish, then returns its run).
        """
        async with transaction(self._db, "save_run") as session:
            created = await _create(session, run, None, upsert=True, wait=True)
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
        async with transaction(self._db, "create_run") as session:
            return await _create(session, run, fingerprint, upsert=False, wait=False)

    @retried
    async def get_run(self, run_id: uuid.UUID, *, actor: str | None = None) -> RunRecord:
        """The run; with `actor`, ForbiddenError unless that actor owns it."""
        async with transaction(self._db, "get_run") as session:
            return RunRecord.model_validate(await load_run(session, run_id, actor))

    @retried
    async def get_run_detail(
        self, run_id: uuid.UUID, *, actor: str | None = None
    ) -> tuple[RunRecord, list[ArtifactRecord]]:
        """The run and its artifacts, read in one transaction."""
        stmt = ARTIFACTS.order(select(Artifact).where(Artifact.run_id == run_id))
        async with transaction(self._db, "get_run") as session:
            run = RunRecord.model_validate(await load_run(session, run_id, actor))
            artifacts = [ArtifactRecord.model_validate(r) for r in await session.scalars(stmt)]
        return run, artifacts

    @retried
    async def check_owner(self, run_ids: Sequence[uuid.UUID], *, actor: str) -> None:
        """NotFoundError if any run is unknown, ForbiddenError if any is another actor's.

        One query for a whole batch, for callers that only reference runs (memory rows).
        """
        wanted = set(run_ids)
        if not wanted:
            return
        stmt = select(Run.id, Run.actor).where(Run.id.in_(wanted))
        async with transaction(self._db, "check_owner") as session:
            owners = {row.id: row.actor for row in await session.execute(stmt)}
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
                now = datetime.now(UTC)
                if new_status == "running" and row.started_at is None:
                    data.setdefault("started_at", now)
                if new_status in TERMINAL and row.completed_at is None:
                    data.setdefault("completed_at", now)
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
        stmt = select(Run).where(*run_conditions(filters))
        async with transaction(self._db, "list_runs") as session:
            return await keyset_page(
                session,
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
        counted in the same transaction.
        """
        stmt = select(Run).options(_SUMMARY_LOAD).where(*run_conditions(filters))
        total_stmt = count_statement(filters, total_cap) if with_total else None
        async with transaction(self._db, "list_runs") as session:
            return await keyset_page(
                session,
                stmt,
                RUNS,
                RunSummary,
                self._cursors,
                limit=limit,
                cursor=cursor,
                offset=offset,
                total_stmt=total_stmt,
            )

    @retried
    async def count_runs(self, filters: RunFilter | None = None, *, cap: int | None = None) -> int:
        """How many runs match. Exact counting reads every match (O(n)); with `cap`, at
        most cap + 1 rows are read, so a result above `cap` means "more than cap" and
        costs the same at any size.
        """
        stmt = count_statement(filters, cap)
        async with transaction(self._db, "count_runs") as session:
            return int(await session.scalar(stmt) or 0)

    @retried
    async def delete_run(self, run_id: uuid.UUID, *, actor: str | None = None) -> None:
        """Delete a run; its steps, artifacts and LLM calls go with it (ON DELETE CASCADE)."""
        async with transaction(self._db, "delete_run") as session:
            if actor is not None:
                await load_run(session, run_id, actor)
            deleted = await session.scalar(delete(Run).where(Run.id == run_id).returning(Run.id))
            if deleted is None:
                raise NotFoundError(f"run {run_id} not found")


async def _create(
    session: AsyncSession, run: RunCreate, fingerprint: str | None, *, upsert: bool, wait: bool
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
            await session.execute(select(func.pg_advisory_xact_lock(lock_id)))
        elif not await session.scalar(select(func.pg_try_advisory_xact_lock(lock_id))):
            raise IdempotencyInProgressError(key)
        row = await session.scalar(
            select(Run).where(Run.actor == run.actor, Run.idempotency_key == key)
        )
        if row is not None:
            stored = row.idempotency_fingerprint
            if fingerprint is not None and stored is not None and stored != fingerprint:
                raise IdempotencyKeyReusedError(key)
            return RunCreation(RunRecord.model_validate(row), replayed=True)
    await check_thread_for_run(session, run.thread_id, run.actor)
    values = _stamped(row_values(run))
    values["idempotency_fingerprint"] = fingerprint
    stmt = pg_insert(Run).values(**values)
    if upsert:
        # on_conflict_do_update speaks column names ("metadata"), not attributes.
        columns = [Run.__mapper__.attrs[k].columns[0].name for k in _RUN_WRITABLE]
        update: dict[str, Any] = {name: stmt.excluded[name] for name in columns}
        update["updated_at"] = func.now()
        stmt = stmt.on_conflict_do_update(
            index_elements=[Run.id], set_=update, where=Run.actor == stmt.excluded.actor
        )
    result = await session.scalars(
        stmt.returning(Run), execution_options={"populate_existing": True}
    )
    inserted = result.one_or_none()
    if inserted is None:
        raise ConflictError(f"run {values['id']} exists and belongs to another actor")
    return RunCreation(RunRecord.model_validate(inserted), replayed=False)


class PostgresStore(RunMethods, StepMethods, ChildMethods, StatsMethods):
    """Runs and everything hanging off them. Every method is one transaction.

    Methods that take `actor=` check, inside that transaction, that the run is that
    actor's (NotFoundError / ForbiddenError); without it they act as a trusted caller.
    """
