"""Run history: runs, their steps, artifacts and LLM calls."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

import asyncpg
from sqlalchemy import ColumnElement, Select, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import load_only

from chad_memory.errors import (
    ConflictError,
    ForbiddenError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    InvalidInputError,
    NotFoundError,
    constraint_of,
)
from chad_memory.models import Artifact, LLMCall, Run, Step
from chad_memory.pagination import decode_cursor, encode_cursor
from chad_memory.schemas import (
    ArtifactCreate,
    ArtifactRecord,
    LLMCallCreate,
    LLMCallRecord,
    ModelStats,
    Page,
    RunCreate,
    RunFilter,
    RunRecord,
    RunStats,
    RunSummary,
    RunTotals,
    RunUpdate,
    StepCreate,
    StepRecord,
)
from chad_memory.stores.limits import check_batch, check_page, row_values
from chad_memory.stores.transactions import (
    Attempt,
    RetryPolicy,
    SessionFactory,
    retried,
    transaction,
    translated_errors,
)

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# Which status a run may move to from each status; terminal states are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"pending", "running", *TERMINAL}),
    "running": frozenset({"running", *TERMINAL}),
    **{s: frozenset({s}) for s in TERMINAL},
}
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


def run_conditions(filters: RunFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if filters.actor is not None:
        conds.append(Run.actor == filters.actor)
    if filters.status is not None:
        conds.append(Run.status == filters.status)
    if filters.name is not None:
        conds.append(Run.name == filters.name)
    if filters.thread_id is not None:
        conds.append(Run.thread_id == filters.thread_id)
    if filters.trace_id is not None:
        conds.append(Run.trace_id == filters.trace_id)
    if filters.tag is not None:
        conds.append(Run.tags.contains([filters.tag]))
    if filters.created_after is not None:
        conds.append(Run.created_at >= filters.created_after)
    if filters.created_before is not None:
        conds.append(Run.created_at < filters.created_before)
    return conds


def _count_stmt(filters: RunFilter | None, cap: int | None) -> Select[Any]:
    """Count matching runs; with `cap`, read at most cap + 1 of them (see `count_runs`)."""
    conds = run_conditions(filters or RunFilter())
    if cap is None:
        return select(func.count()).select_from(Run).where(*conds)
    if cap < 0:
        raise InvalidInputError("cap must not be negative")
    matching = select(Run.id).where(*conds).limit(cap + 1).subquery()
    return select(func.count()).select_from(matching)


# Steps go in through one unnest statement (see `PostgresStore.save_steps`): columns in
# table order with their array types; created_at is the server's.
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
INSERT_STEPS_SQL = (
    f"INSERT INTO steps ({', '.join(name for name, _ in _STEP_ARRAYS)}) "
    "SELECT * FROM unnest("
    + ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(_STEP_ARRAYS, start=1))
    + ") RETURNING id, created_at"
)
_STEP_FIELDS = tuple(StepRecord.model_fields)


def _json_text(value: Any) -> str:
    """JSON for a jsonb parameter; Python None is stored as JSON null, as SQLAlchemy did."""
    if value is None:
        return "null"
    if isinstance(value, dict) and not value:
        return "{}"
    return json.dumps(value)


def _step_record(step: StepCreate, step_id: uuid.UUID, created_at: datetime) -> StepRecord:
    """The stored step: the validated input as written, plus what the database assigned.

    Built without re-validating (the input already was) and without reading the payloads
    back: decoding 1,000 jsonb values again was a fifth of a batch's time in
    bench/ingest.py, and even `model_construct` cost ~13 us a record; this sets what
    `model_construct` sets. StepCreate holds every StepRecord field but created_at
    (tests/test_store_steps_batch.py checks that); the dict is laid out in record order.
    JSON values are the caller's objects, as given: a later read returns them as jsonb
    stored them (equal, though a tuple comes back as a list and 1e20 as an int).
    """
    values = {"id": step_id, "run_id": step.run_id, **step.__dict__}
    values["id"] = step_id
    values["created_at"] = created_at
    record = StepRecord.__new__(StepRecord)
    object.__setattr__(record, "__dict__", values)
    object.__setattr__(record, "__pydantic_fields_set__", set(_STEP_FIELDS))
    object.__setattr__(record, "__pydantic_extra__", None)
    object.__setattr__(record, "__pydantic_private__", None)
    return record


async def fetch_direct(sessions: SessionFactory, what: str, sql: str, *args: Any) -> list[Any]:
    """Run one statement on a pooled asyncpg connection, in a transaction of its own.

    Skips SQLAlchemy's Session and cursor, whose bookkeeping cost ~0.17 ms a call in
    bench/ingest.py. The pool's checkout (and pre-ping) is kept. Errors are translated as
    in `transaction`.
    """
    engine = sessions.kw.get("bind")
    with translated_errors(what) as attempt:
        if isinstance(engine, AsyncEngine):
            async with engine.connect() as conn:
                return await _driver_fetch(conn, sql, args, attempt)
        async with sessions() as session:
            return await _driver_fetch(await session.connection(), sql, args, attempt)


async def _driver_fetch(
    conn: AsyncConnection, sql: str, args: Sequence[Any], attempt: Attempt
) -> list[Any]:
    """`fetch` on the driver between explicit BEGIN and COMMIT.

    One statement would be atomic on its own, but if the connection dies while an
    autocommit statement runs, nobody can tell whether it committed. With BEGIN/COMMIT a
    loss before COMMIT is known to have written nothing, so the store may safely run it
    again (`retried`); only a loss during COMMIT is "outcome unknown". Driver errors are
    re-raised as SQLAlchemy's, as its cursor would.
    """
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        tx = driver.transaction()
        await tx.start()
        try:
            rows: list[Any] = await driver.fetch(sql, *args)
        except BaseException:
            if not driver.is_closed():
                with suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await tx.rollback()
            raise
        attempt.committing = True
        await tx.commit()
    except asyncpg.PostgresError as exc:
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        error_class: type[DBAPIError] = DBAPIError
        if sqlstate.startswith("23"):
            error_class = IntegrityError
        elif sqlstate.startswith("08"):
            error_class = OperationalError
        raise error_class(sql, None, exc) from exc
    return rows


class PostgresStore:
    """Runs and everything hanging off them. Every method is one transaction."""

    def __init__(
        self, session_factory: SessionFactory, *, retry_policy: RetryPolicy | None = None
    ) -> None:
        self._sessions = session_factory
        # None: read db_retry_attempts / db_retry_backoff_ms from settings on each call.
        self.retry_policy = retry_policy

    # Runs -----------------------------------------------------------------------------

    @retried
    async def save_run(self, run: RunCreate) -> RunRecord:
        """Insert, or update the run with the same id (same actor only).

        A run carrying an idempotency key that this actor already used is returned as it
        was first stored, unchanged: retries of a create never make a second run.
        """
        if run.idempotency_key is not None:
            existing = await self._find_by_idempotency_key(run.actor, run.idempotency_key)
            if existing is not None:
                return existing
        values = row_values(run)
        stmt = pg_insert(Run).values(**values)
        # on_conflict_do_update speaks column names ("metadata"), not attributes ("metadata_").
        columns = [Run.__mapper__.attrs[key].columns[0].name for key in _RUN_WRITABLE]
        update: dict[str, Any] = {name: stmt.excluded[name] for name in columns}
        update["updated_at"] = func.now()
        upsert = stmt.on_conflict_do_update(
            index_elements=[Run.id], set_=update, where=Run.actor == stmt.excluded.actor
        ).returning(Run)
        try:
            async with transaction(self._sessions, "save_run") as session:
                row = (
                    await session.scalars(upsert, execution_options={"populate_existing": True})
                ).one_or_none()
                record = None if row is None else RunRecord.model_validate(row)
        except ConflictError as exc:
            # Another request with the same idempotency key won the race: return its run.
            cause = exc.__cause__
            if (
                run.idempotency_key is not None
                and isinstance(cause, IntegrityError)
                and constraint_of(cause) == "uq_runs_actor_idempotency_key"
            ):
                existing = await self._find_by_idempotency_key(run.actor, run.idempotency_key)
                if existing is not None:
                    return existing
            raise
        if record is None:
            raise ConflictError(f"run {values['id']} exists and belongs to another actor")
        return record

    @retried
    async def create_run(self, run: RunCreate, *, fingerprint: str | None = None) -> RunCreation:
        """Insert a new run; with an idempotency key, a retry returns the first run instead.

        `fingerprint` (e.g. a SHA-256 of the request body) tells a true retry from a reused
        key: the same key with another fingerprint raises IdempotencyKeyReusedError. While
        another transaction holds the same (actor, key), IdempotencyInProgressError is
        raised at once rather than waiting: the caller's first request is still running.
        """
        values = row_values(run)
        values["idempotency_fingerprint"] = fingerprint
        # As in update_run: a run created already running or finished gets its timestamps.
        now = datetime.now(UTC)
        if run.status == "running" and values["started_at"] is None:
            values["started_at"] = now
        if run.status in TERMINAL and values["completed_at"] is None:
            values["completed_at"] = now
        key = run.idempotency_key
        async with transaction(self._sessions, "create_run") as session:
            if key is not None:
                lock = func.pg_try_advisory_xact_lock(idempotency_lock_id(run.actor, key))
                if not await session.scalar(select(lock)):
                    raise IdempotencyInProgressError(key)
                row = await session.scalar(
                    select(Run).where(Run.actor == run.actor, Run.idempotency_key == key)
                )
                if row is not None:
                    stored = row.idempotency_fingerprint
                    if fingerprint is not None and stored is not None and stored != fingerprint:
                        raise IdempotencyKeyReusedError(key)
                    return RunCreation(RunRecord.model_validate(row), replayed=True)
            row = await session.scalar(pg_insert(Run).values(**values).returning(Run))
            return RunCreation(RunRecord.model_validate(row), replayed=False)

    async def _find_by_idempotency_key(self, actor: str, key: str) -> RunRecord | None:
        async with transaction(self._sessions, "get_run") as session:
            row = await session.scalar(
                select(Run).where(Run.actor == actor, Run.idempotency_key == key)
            )
            return None if row is None else RunRecord.model_validate(row)

    @retried
    async def get_run(self, run_id: uuid.UUID, *, actor: str | None = None) -> RunRecord:
        """The run; with `actor`, ForbiddenError unless that actor owns it."""
        async with transaction(self._sessions, "get_run") as session:
            row = await session.get(Run, run_id)
            if row is None:
                raise NotFoundError(f"run {run_id} not found")
            if actor is not None and row.actor != actor:
                raise ForbiddenError(f"run {run_id} belongs to another actor")
            return RunRecord.model_validate(row)

    @retried
    async def check_owner(self, run_ids: Sequence[uuid.UUID], *, actor: str) -> None:
        """NotFoundError if any run is unknown, ForbiddenError if any is another actor's.

        One query for a whole batch, for callers that only reference runs (memory rows).
        """
        wanted = set(run_ids)
        if not wanted:
            return
        stmt = select(Run.id, Run.actor).where(Run.id.in_(wanted))
        async with transaction(self._sessions, "check_owner") as session:
            owners = {row.id: row.actor for row in await session.execute(stmt)}
        missing = sorted(str(i) for i in wanted - owners.keys())
        if missing:
            raise NotFoundError(f"run {', '.join(missing)} not found")
        foreign = sorted(str(i) for i, owner in owners.items() if owner != actor)
        if foreign:
            raise ForbiddenError(f"run {', '.join(foreign)} belongs to another actor")

    @retried
    async def update_run(self, run_id: uuid.UUID, changes: RunUpdate) -> RunRecord:
        """Apply the fields set in `changes`; status moves only forward (see TRANSITIONS).

        Moving to `running` stamps started_at and to a terminal status stamps
        completed_at, unless the caller gives them.
        """
        data = changes.model_dump(exclude_unset=True)
        if "metadata" in data:
            data["metadata_"] = data.pop("metadata")
        async with transaction(self._sessions, "update_run") as session:
            row = await session.get(Run, run_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"run {run_id} not found")
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
        return await self._page(select(Run), RunRecord, filters, limit, offset, cursor)

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
        counted in the same transaction: a dashboard page is one pool checkout, not two.
        """
        stmt = select(Run).options(_SUMMARY_LOAD)
        total_stmt = _count_stmt(filters, total_cap) if with_total else None
        return await self._page(stmt, RunSummary, filters, limit, offset, cursor, total_stmt)

    async def _page(
        self,
        stmt: Select[Run],
        record: type[R],
        filters: RunFilter | None,
        limit: int,
        offset: int,
        cursor: str | None,
        total_stmt: Select[Any] | None = None,
    ) -> Page[R]:
        """Keyset page on (created_at, id), newest first; fetches limit + 1 to know if more."""
        check_page(limit, offset)
        stmt = stmt.where(*run_conditions(filters or RunFilter()))
        if cursor is not None:
            at, last_id = decode_cursor(cursor)
            stmt = stmt.where(tuple_(Run.created_at, Run.id) < tuple_(at, last_id))
        stmt = stmt.order_by(Run.created_at.desc(), Run.id.desc()).offset(offset).limit(limit + 1)
        async with transaction(self._sessions, "list_runs") as session:
            rows = list(await session.scalars(stmt))
            total = None if total_stmt is None else int(await session.scalar(total_stmt) or 0)
        items = [record.model_validate(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor(items[-1].created_at, items[-1].id)
        return Page[record](  # type: ignore[valid-type]
            items=items, next_cursor=next_cursor, total=total
        )

    @retried
    async def count_runs(self, filters: RunFilter | None = None, *, cap: int | None = None) -> int:
        """How many runs match. Exact counting reads every match (O(n): ~60-80 ms for 1M
        runs of one actor in bench/ingest.py); with `cap`, at most cap + 1 rows are read,
        so a result above `cap` means "more than cap" and costs the same at any size.
        """
        stmt = _count_stmt(filters, cap)
        async with transaction(self._sessions, "count_runs") as session:
            return int(await session.scalar(stmt) or 0)

    @retried
    async def delete_run(self, run_id: uuid.UUID) -> None:
        """Delete a run; its steps, artifacts and LLM calls go with it (ON DELETE CASCADE)."""
        async with transaction(self._sessions, "delete_run") as session:
            deleted = await session.scalar(delete(Run).where(Run.id == run_id).returning(Run.id))
            if deleted is None:
                raise NotFoundError(f"run {run_id} not found")

    # Steps ----------------------------------------------------------------------------

    async def save_step(self, step: StepCreate) -> StepRecord:
        return (await self.save_steps([step]))[0]

    @retried
    async def save_steps(self, steps: Sequence[StepCreate]) -> list[StepRecord]:
        """Insert steps in one statement; all land or none do. Order of input is kept.

        One `INSERT ... SELECT FROM unnest(arrays)` sent straight to asyncpg: the same
        prepared statement for every batch size, no ORM objects, and no BEGIN/COMMIT round
        trips (a single statement is atomic on its own). The records are the validated
        input plus the id and created_at the statement returns. bench/ingest.py measured
        the ORM executemany it replaces at 0.24 of COPY's rows/s and a single step at 0.27
        of a raw INSERT + commit.
        """
        if not steps:
            return []
        check_batch(steps, "steps")
        ids = [s.id or uuid.uuid4() for s in steps]
        args = (
            ids,
            [s.run_id for s in steps],
            [s.step_index for s in steps],
            [s.parent_step_id for s in steps],
            [s.name for s in steps],
            [s.type for s in steps],
            [s.status for s in steps],
            [_json_text(s.input) for s in steps],
            [_json_text(s.output) for s in steps],
            [s.error for s in steps],
            [s.started_at for s in steps],
            [s.completed_at for s in steps],
            [s.duration_ms for s in steps],
            [_json_text(s.metadata) for s in steps],
        )
        rows = await fetch_direct(self._sessions, "save_steps", INSERT_STEPS_SQL, *args)
        # RETURNING order is not promised; the ids (ours, unique) put rows back in order.
        created = {row[0]: row[1] for row in rows}
        return [_step_record(s, i, created[i]) for s, i in zip(steps, ids, strict=True)]

    @retried
    async def get_step_ids(self, run_id: uuid.UUID) -> set[uuid.UUID]:
        """The ids of a run's steps, to check references (step_id, parent_step_id) cheaply."""
        async with transaction(self._sessions, "get_step_ids") as session:
            return set(await session.scalars(select(Step.id).where(Step.run_id == run_id)))

    @retried
    async def get_steps(self, run_id: uuid.UUID) -> list[StepRecord]:
        stmt = select(Step).where(Step.run_id == run_id).order_by(Step.step_index)
        async with transaction(self._sessions, "get_steps") as session:
            return [StepRecord.model_validate(r) for r in await session.scalars(stmt)]

    # Artifacts ------------------------------------------------------------------------

    @retried
    async def save_artifact(self, artifact: ArtifactCreate) -> ArtifactRecord:
        async with transaction(self._sessions, "save_artifact") as session:
            row = await session.scalar(
                pg_insert(Artifact).values(**row_values(artifact)).returning(Artifact)
            )
            return ArtifactRecord.model_validate(row)

    @retried
    async def get_artifacts(self, run_id: uuid.UUID) -> list[ArtifactRecord]:
        stmt = (
            select(Artifact)
            .where(Artifact.run_id == run_id)
            .order_by(Artifact.created_at, Artifact.id)
        )
        async with transaction(self._sessions, "get_artifacts") as session:
            return [ArtifactRecord.model_validate(r) for r in await session.scalars(stmt)]

    # LLM calls ------------------------------------------------------------------------

    @retried
    async def save_llm_call(self, call: LLMCallCreate) -> LLMCallRecord:
        values = row_values(call)
        if values["total_tokens"] is None:
            values["total_tokens"] = call.prompt_tokens + call.completion_tokens
        async with transaction(self._sessions, "save_llm_call") as session:
            row = await session.scalar(pg_insert(LLMCall).values(**values).returning(LLMCall))
            return LLMCallRecord.model_validate(row)

    @retried
    async def get_llm_calls(self, run_id: uuid.UUID) -> list[LLMCallRecord]:
        stmt = (
            select(LLMCall).where(LLMCall.run_id == run_id).order_by(LLMCall.created_at, LLMCall.id)
        )
        async with transaction(self._sessions, "get_llm_calls") as session:
            return [LLMCallRecord.model_validate(r) for r in await session.scalars(stmt)]

    @retried
    async def get_run_totals(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, RunTotals]:
        """Step count, tokens and cost of each run, for a list page: two grouped queries
        for the whole page instead of `get_run_stats` per row. Unknown ids are left out;
        callers check ownership first (the ids come from the actor's own listing)."""
        wanted = list(dict.fromkeys(run_ids))
        if not wanted:
            return {}
        check_batch(wanted, "run ids")
        step_q = (
            select(Step.run_id, func.count(Step.id))
            .where(Step.run_id.in_(wanted))
            .group_by(Step.run_id)
        )
        call_q = (
            select(
                LLMCall.run_id,
                func.count(LLMCall.id),
                func.coalesce(func.sum(LLMCall.total_tokens), 0),
                func.coalesce(func.sum(LLMCall.cost_usd), 0),
            )
            .where(LLMCall.run_id.in_(wanted))
            .group_by(LLMCall.run_id)
        )
        async with transaction(self._sessions, "get_run_totals") as session:
            known = set(await session.scalars(select(Run.id).where(Run.id.in_(wanted))))
            steps = {r[0]: int(r[1]) for r in await session.execute(step_q)}
            calls = {r[0]: (r[1], r[2], r[3]) for r in await session.execute(call_q)}
        totals: dict[uuid.UUID, RunTotals] = {}
        for run_id in wanted:
            if run_id not in known:
                continue
            count, tokens, cost = calls.get(run_id, (0, 0, Decimal(0)))
            totals[run_id] = RunTotals(
                run_id=run_id,
                step_count=steps.get(run_id, 0),
                llm_call_count=int(count),
                total_tokens=int(tokens),
                cost_usd=Decimal(cost or 0),
            )
        return totals

    # Stats ----------------------------------------------------------------------------

    @retried
    async def get_run_stats(self, run_id: uuid.UUID) -> RunStats:
        """Token and cost totals (exact: numeric sums), durations and latency percentiles."""
        latency = LLMCall.latency_ms
        step_q = select(
            func.count(Step.id),
            func.sum(Step.duration_ms),
            func.min(Step.started_at),
            func.max(Step.completed_at),
        ).where(Step.run_id == run_id)
        call_q = select(
            func.count(LLMCall.id),
            func.coalesce(func.sum(LLMCall.prompt_tokens), 0),
            func.coalesce(func.sum(LLMCall.completion_tokens), 0),
            func.coalesce(func.sum(LLMCall.total_tokens), 0),
            func.coalesce(func.sum(LLMCall.cost_usd), 0),
            func.avg(latency),
            func.percentile_cont(0.5).within_group(latency),
            func.percentile_cont(0.95).within_group(latency),
            func.max(latency),
        ).where(LLMCall.run_id == run_id)
        model_q = (
            select(
                LLMCall.provider,
                LLMCall.model,
                func.count(LLMCall.id),
                func.sum(LLMCall.prompt_tokens),
                func.sum(LLMCall.completion_tokens),
                func.sum(LLMCall.total_tokens),
                func.coalesce(func.sum(LLMCall.cost_usd), 0),
                func.avg(latency),
            )
            .where(LLMCall.run_id == run_id)
            .group_by(LLMCall.provider, LLMCall.model)
            .order_by(LLMCall.provider, LLMCall.model)
        )
        async with transaction(self._sessions, "get_run_stats") as session:
            run = await session.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} not found")
            steps = (await session.execute(step_q)).one()
            calls = (await session.execute(call_q)).one()
            models = (await session.execute(model_q)).all()

        start, end = run.started_at, run.completed_at
        if start is None or end is None:
            start, end = steps[2], steps[3]
        duration = (end - start).total_seconds() * 1000 if start and end else None

        def _float(value: Any) -> float | None:
            return None if value is None else float(value)

        return RunStats(
            run_id=run_id,
            step_count=steps[0],
            llm_call_count=calls[0],
            prompt_tokens=int(calls[1]),
            completion_tokens=int(calls[2]),
            total_tokens=int(calls[3]),
            cost_usd=Decimal(calls[4]),
            duration_ms=duration,
            step_duration_ms_total=_float(steps[1]),
            latency_ms_mean=_float(calls[5]),
            latency_ms_p50=_float(calls[6]),
            latency_ms_p95=_float(calls[7]),
            latency_ms_max=_float(calls[8]),
            by_model=[
                ModelStats(
                    provider=m[0],
                    model=m[1],
                    calls=m[2],
                    prompt_tokens=int(m[3]),
                    completion_tokens=int(m[4]),
                    total_tokens=int(m[5]),
                    cost_usd=Decimal(m[6]),
                    latency_ms_mean=_float(m[7]),
                )
                for m in models
            ],
        )
