"""save_steps' unnest path: order, atomicity, error translation, records equal to rows."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chad_memory import (
    ConflictError,
    DatabaseUnavailableError,
    NotFoundError,
    PostgresStore,
    RunCreate,
    StepCreate,
)
from chad_memory.database import create_engine, get_session_factory
from chad_memory.models import Step
from chad_memory.schemas import StepFields, StepRecord
from chad_memory.stores.steps import INSERT_STEPS_SQL


def test_step_create_holds_every_record_field_but_created_at() -> None:
    """`_step_record` copies a StepCreate's fields into the record, in record order."""
    assert {*StepCreate.model_fields, "created_at"} == set(StepRecord.model_fields)
    assert ["id", "run_id", *StepFields.model_fields, "created_at"] == list(StepRecord.model_fields)


def test_insert_statement_names_every_column_but_created_at() -> None:
    columns = INSERT_STEPS_SQL.split("(", 1)[1].split(")", 1)[0].split(", ")
    table = [c.name for c in Step.__table__.c if c.name != "created_at"]
    assert columns == table


async def test_large_batch_keeps_input_order_and_matches_stored_rows(
    store: PostgresStore,
) -> None:
    run = await store.save_run(RunCreate(actor="alice"))
    indexes = list(range(2500))
    random.Random(7).shuffle(indexes)
    start = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    steps = [
        StepCreate(
            run_id=run.id,
            step_index=i,
            name=f"step {i}",
            type="tool" if i % 2 else None,
            status="failed" if i % 7 == 0 else "succeeded",
            input={"i": i, "nested": {"list": [1, 2.5, None, "x"]}} if i % 3 else None,
            output="plain string" if i % 5 == 0 else [i],
            error="boom" if i % 7 == 0 else None,
            started_at=start + timedelta(seconds=i),
            completed_at=start + timedelta(seconds=i, milliseconds=5),
            duration_ms=5.25,
            metadata={"k": i} if i % 4 == 0 else {},
        )
        for i in indexes
    ]
    saved = await store.save_steps(steps)
    assert [s.step_index for s in saved] == indexes
    assert len({s.id for s in saved}) == len(indexes)
    assert len({s.created_at for s in saved}) == 1
    stored = {s.id: s for s in await store.get_steps(run.id)}
    # What save_steps answers is exactly what a later read returns, field by field.
    assert [stored[s.id] for s in saved] == saved
    assert [s.model_dump(mode="json") for s in saved] == [
        stored[s.id].model_dump(mode="json") for s in saved
    ]


async def test_given_ids_and_parent_links_in_one_batch(store: PostgresStore) -> None:
    run = await store.save_run(RunCreate(actor="alice"))
    parent_id = uuid.uuid4()
    saved = await store.save_steps(
        [
            StepCreate(id=parent_id, run_id=run.id, step_index=0),
            StepCreate(run_id=run.id, step_index=1, parent_step_id=parent_id),
        ]
    )
    assert saved[0].id == parent_id
    assert saved[1].parent_step_id == parent_id
    assert (await store.get_steps(run.id))[1].parent_step_id == parent_id


async def test_conflict_in_the_middle_of_a_batch_writes_nothing(
    store: PostgresStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    run = await store.save_run(RunCreate(actor="alice"))
    await store.save_step(StepCreate(run_id=run.id, step_index=500))
    batch = [StepCreate(run_id=run.id, step_index=i) for i in range(1000)]
    with pytest.raises(ConflictError, match="step_index is already taken"):
        await store.save_steps(batch)
    async with session_factory() as session:
        count = await session.scalar(select(func.count()).where(Step.run_id == run.id))
    assert count == 1
    # A duplicate index inside the batch itself is the same conflict.
    with pytest.raises(ConflictError):
        await store.save_steps([StepCreate(run_id=run.id, step_index=9)] * 2)
    # The connection the failed statements ran on is fine for the next call.
    again = await store.save_steps([StepCreate(run_id=run.id, step_index=i) for i in (1, 2)])
    assert [s.step_index for s in again] == [1, 2]


async def test_unknown_run_in_a_batch_is_not_found_and_writes_nothing(
    store: PostgresStore,
) -> None:
    run = await store.save_run(RunCreate(actor="alice"))
    batch = [StepCreate(run_id=run.id, step_index=i) for i in range(10)]
    batch[5] = StepCreate(run_id=uuid.uuid4(), step_index=5)
    with pytest.raises(NotFoundError, match=r"run .* not found"):
        await store.save_steps(batch)
    assert await store.get_steps(run.id) == []


async def test_taken_step_id_is_a_conflict(store: PostgresStore) -> None:
    run = await store.save_run(RunCreate(actor="alice"))
    step = await store.save_step(StepCreate(run_id=run.id, step_index=0))
    with pytest.raises(ConflictError, match="id is already taken"):
        await store.save_step(StepCreate(id=step.id, run_id=run.id, step_index=1))


async def test_session_factory_not_bound_to_an_engine(engine: AsyncEngine) -> None:
    """Bound to a connection instead, save_steps goes through a Session's connection."""
    async with engine.connect() as conn:
        store = PostgresStore(async_sessionmaker(bind=conn, expire_on_commit=False))
        run = await store.save_run(RunCreate(actor="alice"))
        saved = await store.save_steps([StepCreate(run_id=run.id, step_index=i) for i in (2, 1)])
        assert [s.step_index for s in saved] == [2, 1]
        with pytest.raises(ConflictError):
            await store.save_step(StepCreate(run_id=run.id, step_index=1))
        assert [s.step_index for s in await store.get_steps(run.id)] == [1, 2]


async def test_unreachable_database_is_unavailable() -> None:
    dead = create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none", pool_timeout=1)
    store = PostgresStore(get_session_factory(dead))
    try:
        with pytest.raises(DatabaseUnavailableError, match="save_steps"):
            await store.save_step(StepCreate(run_id=uuid.uuid4(), step_index=0))
    finally:
        await dead.dispose()
