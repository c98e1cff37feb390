"""Concurrent writers on the store library: one row, one writer's whole payload, no leaks.

Each test fires its writers at once with asyncio.gather over a pool large enough that
they really run in parallel on separate server connections.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory import ConflictError, PostgresStore, RunCreate, StepCreate
from chad_memory.database import get_session_factory
from chad_memory.models import Run, Step
from tests.reliability.conftest import EngineMaker

WRITERS = 12


@pytest.fixture
def wide_store(make_engine: EngineMaker) -> tuple[PostgresStore, AsyncEngine]:
    engine, _ = make_engine(db_pool_size=WRITERS, db_max_overflow=0)
    return PostgresStore(get_session_factory(engine)), engine


async def _gather(coros: list[Any]) -> list[Any]:
    return list(await asyncio.gather(*coros, return_exceptions=True))


async def test_same_run_id_leaves_one_row_with_one_writers_whole_payload(
    wide_store: tuple[PostgresStore, AsyncEngine],
) -> None:
    store, engine = wide_store
    run_id = uuid.uuid4()
    payloads = [
        RunCreate(
            id=run_id,
            actor="alice",
            name=f"writer-{i}",
            agent=f"agent-{i}",
            request_payload={"writer": i},
            metadata={"writer": i},
            tags=[f"w{i}"],
        )
        for i in range(WRITERS)
    ]
    results = await _gather([store.save_run(p) for p in payloads])

    assert not [r for r in results if isinstance(r, BaseException)], results
    async with engine.connect() as conn:
        rows = (await conn.execute(select(Run).where(Run.id == run_id))).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    writer = row["request_payload"]["writer"]
    # Every field comes from the same writer: no mix of two payloads.
    assert row["name"] == f"writer-{writer}"
    assert row["agent"] == f"agent-{writer}"
    assert row["metadata"] == {"writer": writer}
    assert row["tags"] == [f"w{writer}"]


async def test_same_trace_id_leaves_one_row_and_the_others_conflict(
    wide_store: tuple[PostgresStore, AsyncEngine],
) -> None:
    store, engine = wide_store
    results = await _gather(
        [
            store.save_run(RunCreate(actor="alice", trace_id="trace-1", name=f"w{i}"))
            for i in range(WRITERS)
        ]
    )

    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == WRITERS - 1
    assert all(isinstance(e, ConflictError) for e in losers), losers
    assert not any(isinstance(e, IntegrityError) for e in losers)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(Run.id, Run.name).where(Run.trace_id == "trace-1"))).all()
    assert [(r.id, r.name) for r in rows] == [(winners[0].id, winners[0].name)]


async def test_same_idempotency_key_makes_exactly_one_run(
    wide_store: tuple[PostgresStore, AsyncEngine],
) -> None:
    store, engine = wide_store
    results = await _gather(
        [
            store.save_run(RunCreate(actor="alice", idempotency_key="k-1", name=f"w{i}"))
            for i in range(WRITERS)
        ]
    )

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert len({r.id for r in results}) == 1
    # Every caller sees the run as it was first stored, not its own payload.
    assert len({r.name for r in results}) == 1
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(Run).where(Run.idempotency_key == "k-1")
        )
    assert count == 1


async def test_concurrent_step_appends_with_distinct_indexes_all_land(
    wide_store: tuple[PostgresStore, AsyncEngine],
) -> None:
    store, engine = wide_store
    run = await store.save_run(RunCreate(actor="alice"))
    per_writer = 5
    results = await _gather(
        [
            store.save_steps(
                [
                    StepCreate(run_id=run.id, step_index=w * per_writer + j, name=f"s{w}.{j}")
                    for j in range(per_writer)
                ]
            )
            for w in range(WRITERS)
        ]
    )

    assert not [r for r in results if isinstance(r, BaseException)], results
    steps = await store.get_steps(run.id)
    assert [s.step_index for s in steps] == list(range(WRITERS * per_writer))
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM steps")) == WRITERS * per_writer


async def test_concurrent_steps_with_the_same_index_one_lands_others_conflict(
    wide_store: tuple[PostgresStore, AsyncEngine],
) -> None:
    store, engine = wide_store
    run = await store.save_run(RunCreate(actor="alice"))
    results = await _gather(
        [
            store.save_step(StepCreate(run_id=run.id, step_index=0, name=f"w{i}"))
            for i in range(WRITERS)
        ]
    )

    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, ConflictError) for r in results if isinstance(r, BaseException))
    async with engine.connect() as conn:
        names = (await conn.scalars(select(Step.name).where(Step.run_id == run.id))).all()
    assert names == [winners[0].name]
