"""Transient errors, killed backends, timeouts and an exhausted pool, at the library level.

Every fault here is real PostgreSQL behaviour: a serialization failure from two
REPEATABLE READ transactions, SQLSTATEs raised by the server from a trigger, backends
killed with pg_terminate_backend, statement_timeout firing, a pool with no free slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import TextClause

from chad_memory import (
    DatabaseUnavailableError,
    InvalidInputError,
    PostgresStore,
    RunCreate,
    RunUpdate,
    StepCreate,
)
from chad_memory.database import get_session_factory
from chad_memory.errors import DatabaseTimeoutError, PoolExhaustedError, TransientDatabaseError
from chad_memory.models import Run, Step
from chad_memory.schemas import StepRecord
from chad_memory.stores.transactions import RetryPolicy, transaction
from tests.reliability.conftest import EngineMaker, terminate, wait_for_lock_wait

FAST = RetryPolicy(attempts=3, backoff_seconds=0.01)
ONCE = RetryPolicy(attempts=1)


def _store(engine: AsyncEngine, policy: RetryPolicy = FAST) -> PostgresStore:
    return PostgresStore(get_session_factory(engine), retry_policy=policy)


async def _inject_failures(conn: AsyncConnection, sqlstate: str, times: int) -> None:
    """Make every INSERT into steps fail with `sqlstate` the first `times` times.

    The counter is a sequence because nextval() survives the rollback of the failed
    transaction: afterwards it tells how many attempts the store made.
    """
    await conn.execute(text("CREATE SEQUENCE fault_attempts"))
    await conn.execute(
        text(
            f"""
            CREATE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('fault_attempts') <= {int(times)} THEN
                    RAISE EXCEPTION 'injected fault' USING ERRCODE = '{sqlstate}';
                END IF;
                RETURN NULL;
            END $$
            """
        )
    )
    await conn.execute(
        text(
            "CREATE TRIGGER inject_fault AFTER INSERT ON steps"
            " FOR EACH STATEMENT EXECUTE FUNCTION inject_fault()"
        )
    )


async def _attempts(conn: AsyncConnection) -> int:
    return int(await conn.scalar(text("SELECT last_value FROM fault_attempts")) or 0)


async def _step_count(conn: AsyncConnection) -> int:
    return int(await conn.scalar(select(func.count()).select_from(Step)) or 0)


async def test_real_serialization_failure_is_retried(
    make_engine: EngineMaker, watcher: AsyncConnection, side_engine: AsyncEngine
) -> None:
    """A REPEATABLE READ update racing a committed update gets 40001; the retry wins."""
    engine, name = make_engine(engine_options={"isolation_level": "REPEATABLE READ"})
    store = _store(engine)
    run = await store.save_run(RunCreate(actor="alice", name="before"))

    async with side_engine.connect() as side:
        await side.execute(update_name(run.id, "side"))  # holds the row lock, uncommitted
        task = asyncio.create_task(store.update_run(run.id, RunUpdate(status="running")))
        await wait_for_lock_wait(watcher, name)
        # The store's statement now reads a row that changed after its snapshot: 40001.
        await side.commit()
        with_retry = await asyncio.wait_for(task, 10)

    assert with_retry.status == "running"
    assert with_retry.name == "side"  # both writes kept, none lost


def update_name(run_id: uuid.UUID, name: str) -> TextClause:
    return text("UPDATE runs SET name = :name WHERE id = :id").bindparams(name=name, id=run_id)


async def test_real_serialization_failure_surfaces_typed_after_last_attempt(
    make_engine: EngineMaker, watcher: AsyncConnection, side_engine: AsyncEngine
) -> None:
    engine, name = make_engine(engine_options={"isolation_level": "REPEATABLE READ"})
    store = _store(engine, ONCE)
    run = await store.save_run(RunCreate(actor="alice", name="before"))

    async with side_engine.connect() as side:
        await side.execute(update_name(run.id, "side"))
        task = asyncio.create_task(store.update_run(run.id, RunUpdate(status="running")))
        await wait_for_lock_wait(watcher, name)
        await side.commit()
        with pytest.raises(TransientDatabaseError) as caught:
            await asyncio.wait_for(task, 10)

    assert caught.value.retryable
    after = await store.get_run(run.id)
    assert (after.status, after.name) == ("pending", "side")


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
async def test_transient_errors_are_retried_until_success(
    make_engine: EngineMaker,
    watcher: AsyncConnection,
    sqlstate: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, _ = make_engine()
    store = _store(engine)
    run = await store.save_run(RunCreate(actor="alice"))
    await _inject_failures(watcher, sqlstate, times=2)

    with caplog.at_level(logging.WARNING, logger="chad_memory.stores.transactions"):
        steps = await store.save_steps([StepCreate(run_id=run.id, step_index=i) for i in range(3)])

    assert [s.step_index for s in steps] == [0, 1, 2]
    assert await _attempts(watcher) == 3
    assert await _step_count(watcher) == 3
    assert sum(sqlstate in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
async def test_transient_errors_are_bounded_and_leave_nothing(
    make_engine: EngineMaker, watcher: AsyncConnection, sqlstate: str
) -> None:
    engine, _ = make_engine()
    store = _store(engine)
    run = await store.save_run(RunCreate(actor="alice"))
    await _inject_failures(watcher, sqlstate, times=1000)

    with pytest.raises(TransientDatabaseError):
        await store.save_steps([StepCreate(run_id=run.id, step_index=i) for i in range(3)])

    assert await _attempts(watcher) == FAST.attempts
    assert await _step_count(watcher) == 0


async def _kill_while_blocked(
    store: PostgresStore,
    run_id: uuid.UUID,
    name: str,
    watcher: AsyncConnection,
    side: AsyncConnection,
) -> asyncio.Task[list[StepRecord]]:
    """Start a step insert that blocks on the run's row lock, then kill its backend."""
    task: asyncio.Task[list[StepRecord]] = asyncio.create_task(
        store.save_steps([StepCreate(run_id=run_id, step_index=i) for i in range(3)])
    )
    await wait_for_lock_wait(watcher, name)
    assert await terminate(watcher, name) >= 1
    return task


async def test_backend_killed_mid_transaction_is_retried(
    make_engine: EngineMaker, watcher: AsyncConnection, side_engine: AsyncEngine
) -> None:
    engine, name = make_engine()
    store = _store(engine, RetryPolicy(attempts=3, backoff_seconds=0.2))
    run = await store.save_run(RunCreate(actor="alice"))

    async with side_engine.connect() as side:
        # The step rows' foreign key needs a KEY SHARE lock on the run: FOR UPDATE blocks it.
        await side.execute(select(Run.id).where(Run.id == run.id).with_for_update())
        task = await _kill_while_blocked(store, run.id, name, watcher, side)
        await side.rollback()  # release the lock so the retry can go through
        steps = await asyncio.wait_for(task, 10)

    assert len(steps) == 3
    assert await _step_count(watcher) == 3


async def test_backend_killed_without_retries_fails_typed_and_next_call_succeeds(
    make_engine: EngineMaker, watcher: AsyncConnection, side_engine: AsyncEngine
) -> None:
    engine, name = make_engine(db_pool_size=1, db_max_overflow=0)
    store = _store(engine, ONCE)
    run = await store.save_run(RunCreate(actor="alice"))

    async with side_engine.connect() as side:
        await side.execute(select(Run.id).where(Run.id == run.id).with_for_update())
        task = await _kill_while_blocked(store, run.id, name, watcher, side)
        with pytest.raises(DatabaseUnavailableError) as caught:
            await asyncio.wait_for(task, 10)
        await side.rollback()

    assert caught.value.retryable  # lost before COMMIT: safe to run again
    assert await _step_count(watcher) == 0  # the half-done insert was rolled back
    # The dead connection was dropped from the pool (pre-ping); the next call just works.
    assert len(await store.save_steps([StepCreate(run_id=run.id, step_index=0)])) == 1
    assert await _step_count(watcher) == 1


async def test_connection_lost_during_commit_is_not_retried(
    make_engine: EngineMaker, watcher: AsyncConnection
) -> None:
    """If COMMIT may have happened, repeating the work could write it twice: raise instead."""
    engine, name = make_engine()
    factory = get_session_factory(engine)

    async def write_then_lose_the_connection() -> None:
        async with transaction(factory, "test") as session:
            session.add(Run(id=uuid.uuid4(), actor="alice"))
            await session.flush()
            await terminate(watcher, name)  # the COMMIT that follows finds no server

    with pytest.raises(DatabaseUnavailableError) as caught:
        await write_then_lose_the_connection()

    assert not caught.value.retryable
    assert "outcome unknown" in str(caught.value)
    assert await watcher.scalar(select(func.count()).select_from(Run)) == 0


async def test_statement_timeout_is_typed_and_the_connection_is_reused(
    make_engine: EngineMaker, side_engine: AsyncEngine
) -> None:
    engine, _ = make_engine(db_statement_timeout_ms=300, db_pool_size=1, db_max_overflow=0)
    store = _store(engine)
    run = await store.save_run(RunCreate(actor="alice"))
    async with engine.connect() as conn:
        pid_before = await conn.scalar(text("SELECT pg_backend_pid()"))

    async with side_engine.connect() as side:
        await side.execute(select(Run.id).where(Run.id == run.id).with_for_update())
        started = time.monotonic()
        with pytest.raises(DatabaseTimeoutError):
            await store.update_run(run.id, RunUpdate(name="slow"))
        elapsed = time.monotonic() - started
        await side.rollback()

    assert elapsed < 2.0  # cancelled by the server, and not retried
    assert (await store.update_run(run.id, RunUpdate(name="fast"))).name == "fast"
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT pg_backend_pid()")) == pid_before


async def test_exhausted_pool_is_a_typed_error_within_the_pool_timeout(
    make_engine: EngineMaker,
) -> None:
    engine, _ = make_engine(db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.5)
    store = _store(engine)
    run = await store.save_run(RunCreate(actor="alice"))

    async with engine.connect() as held:
        await held.execute(text("SELECT 1"))  # the only connection is checked out
        started = time.monotonic()
        with pytest.raises(PoolExhaustedError):
            await store.get_run(run.id)
        elapsed = time.monotonic() - started

    assert 0.4 <= elapsed < 2.0
    assert (await store.get_run(run.id)).id == run.id


async def test_data_exceptions_from_postgres_are_typed(
    make_engine: EngineMaker, watcher: AsyncConnection
) -> None:
    """Found by the fuzzer: float8 sums overflowing in get_run_stats escaped as a raw
    driver error (a 500). Durations are now bounded on input, and any SQLSTATE class 22
    (data exception) that still happens becomes InvalidInputError."""
    engine, _ = make_engine()
    store = _store(engine)
    run = await store.save_run(RunCreate(actor="alice"))
    with pytest.raises(ValidationError):
        StepCreate(run_id=run.id, step_index=0, duration_ms=1e300)
    # Rows written behind the schema's back (an older client, a manual fix) still sum.
    for index in range(2):
        await watcher.execute(
            text(
                "INSERT INTO steps (id, run_id, step_index, status, duration_ms)"
                " VALUES (gen_random_uuid(), :run, :i, 'succeeded', 1e308)"
            ),
            {"run": run.id, "i": index},
        )
    with pytest.raises(InvalidInputError) as caught:
        await store.get_run_stats(run.id)
    assert "asyncpg" not in str(caught.value)  # the message reaches HTTP clients
