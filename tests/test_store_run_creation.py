"""PostgresStore.create_run (idempotency with fingerprints) and list_run_summaries."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    LLMCallCreate,
    NotFoundError,
    PostgresStore,
    RunCreate,
    RunFilter,
)
from chad_memory.errors import IdempotencyInProgressError, IdempotencyKeyReusedError
from chad_memory.schemas import RunSummary
from chad_memory.stores.runs import idempotency_lock_id


async def test_create_run_replays_and_refuses_reused_keys(store: PostgresStore) -> None:
    first = await store.create_run(
        RunCreate(actor="a", name="x", idempotency_key="k"), fingerprint="f1"
    )
    assert not first.replayed
    again = await store.create_run(
        RunCreate(actor="a", name="x", idempotency_key="k"), fingerprint="f1"
    )
    assert again.replayed
    assert again.run == first.run
    with pytest.raises(IdempotencyKeyReusedError, match="'k'") as caught:
        await store.create_run(
            RunCreate(actor="a", name="y", idempotency_key="k"), fingerprint="f2"
        )
    assert isinstance(caught.value, InvalidInputError)
    other_actor = await store.create_run(
        RunCreate(actor="b", idempotency_key="k"), fingerprint="f2"
    )
    assert not other_actor.replayed
    plain = await store.create_run(RunCreate(actor="a"))
    assert not plain.replayed
    assert plain.run.started_at is None
    started = (await store.create_run(RunCreate(actor="a", status="running"))).run
    assert started.started_at is not None
    assert started.completed_at is None
    done = (await store.create_run(RunCreate(actor="a", status="failed"))).run
    assert done.completed_at is not None
    assert await store.count_runs() == 5


async def test_create_run_while_key_is_locked(store: PostgresStore, engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(select(func.pg_advisory_xact_lock(idempotency_lock_id("a", "busy"))))
        with pytest.raises(IdempotencyInProgressError) as caught:
            await store.create_run(RunCreate(actor="a", idempotency_key="busy"), fingerprint="f")
        assert isinstance(caught.value, ConflictError)
        await conn.rollback()
    assert not (await store.create_run(RunCreate(actor="a", idempotency_key="busy"))).replayed


async def test_summaries_match_full_listing_without_payloads(store: PostgresStore) -> None:
    for i in range(5):
        await store.save_run(
            RunCreate(actor="a", name=f"r{i}", request_payload={"big": "x" * 100}, tags=["t"])
        )
    filters = RunFilter(actor="a", tag="t")
    full = await store.list_runs(filters, limit=3)
    summaries = await store.list_run_summaries(filters, limit=3)
    assert [s.id for s in summaries.items] == [r.id for r in full.items]
    assert summaries.next_cursor == full.next_cursor
    assert all(isinstance(s, RunSummary) for s in summaries.items)
    assert summaries.items[0].tags == ["t"]
    rest = await store.list_run_summaries(filters, limit=3, cursor=summaries.next_cursor)
    assert len(rest.items) == 2
    assert rest.next_cursor is None


async def test_values_the_database_rejects_are_invalid_input(store: PostgresStore) -> None:
    run = await store.save_run(RunCreate(actor="a"))
    # Skip validation on purpose: the driver's own range check must still map to our error.
    unchecked = LLMCallCreate.model_construct(
        run_id=run.id, prompt_tokens=2**40, completion_tokens=0, total_tokens=2**40
    )
    with pytest.raises(InvalidInputError, match="out of range or not allowed"):
        await store.save_llm_call(unchecked)
    assert await store.get_llm_calls(run.id) == []


async def test_check_owner_in_one_call(store: PostgresStore) -> None:
    mine = (await store.create_run(RunCreate(actor="a"))).run.id
    theirs = (await store.create_run(RunCreate(actor="b"))).run.id
    await store.check_owner([mine, mine], actor="a")
    await store.check_owner([], actor="a")
    with pytest.raises(ForbiddenError, match=str(theirs)):
        await store.check_owner([mine, theirs], actor="a")
    unknown = uuid.uuid4()
    with pytest.raises(NotFoundError, match=str(unknown)):
        await store.check_owner([theirs, unknown], actor="a")
