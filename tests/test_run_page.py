"""`get_run_page`: what the run page shows, on one pooled connection in three round trips,
equal to what the single reads return, with the owner rule of `get_run`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory import ForbiddenError, NotFoundError, PostgresStore
from chad_memory.schemas import ArtifactCreate, LLMCallCreate, RunCreate, StepCreate


class Traffic:
    def __init__(self) -> None:
        self.checkouts = 0
        self.queries: list[str] = []


@contextmanager
def traffic(engine: AsyncEngine) -> Iterator[Traffic]:
    """Pool checkouts, and the statements sent while the block runs, each one round trip:
    SQLAlchemy's (its cursor event) and those run on the asyncpg connection directly
    (asyncpg's query logger, which SQLAlchemy's prepared statements do not reach)."""
    seen = Traffic()
    logged: list[Any] = []

    def log(record: Any) -> None:
        seen.queries.append(record.query)

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        seen.checkouts += 1
        driver = dbapi_connection.driver_connection
        if driver not in logged:
            driver.add_query_logger(log)
            logged.append(driver)

    def cursor(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.queries.append(statement)

    event.listen(engine.sync_engine, "checkout", checkout)
    event.listen(engine.sync_engine, "before_cursor_execute", cursor)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "checkout", checkout)
        event.remove(engine.sync_engine, "before_cursor_execute", cursor)
        for driver in logged:
            driver.remove_query_logger(log)


async def _sample(store: PostgresStore) -> uuid.UUID:
    run = await store.save_run(RunCreate(actor="alice", name="paged"))
    await store.save_steps(
        [StepCreate(run_id=run.id, step_index=i, name=f"s{i}") for i in range(5)]
    )
    for model, latencies in (("small", (1.0, 2.0, 3.0, 4.0)), ("large", (10.0, 20.0))):
        for ms in latencies:
            await store.save_llm_call(
                LLMCallCreate(
                    run_id=run.id,
                    provider="openai",
                    model=model,
                    prompt_tokens=3,
                    completion_tokens=2,
                    latency_ms=ms,
                    cost_usd=Decimal("0.000000011"),
                )
            )
    await store.save_artifact(ArtifactCreate(run_id=run.id, name="report"))
    return run.id


async def test_the_page_equals_the_single_reads(store: PostgresStore) -> None:
    run_id = await _sample(store)
    page = await store.get_run_page(run_id, actor="alice", steps_limit=3)

    assert page.run == await store.get_run(run_id, actor="alice")
    assert page.stats == await store.get_run_stats(run_id, actor="alice")
    steps = await store.list_steps(run_id, actor="alice", limit=3)
    assert page.steps.items == steps.items
    assert page.steps.next_cursor is not None
    assert page.llm_calls == await store.get_llm_calls(run_id, actor="alice")
    assert page.artifacts == await store.get_artifacts(run_id, actor="alice")
    later = await store.get_run_page(run_id, actor="alice", cursor=page.steps.next_cursor)
    assert [s.step_index for s in later.steps.items] == [3, 4]


async def test_per_model_percentiles_are_postgresql_percentile_cont(store: PostgresStore) -> None:
    run_id = await _sample(store)
    stats = (await store.get_run_page(run_id, actor="alice")).stats
    by_model = {m.model: m for m in stats.by_model}
    # Linear interpolation between closest ranks.
    assert by_model["small"].latency_ms_p50 == 2.5
    assert by_model["large"].latency_ms_p95 == 19.5
    assert by_model["small"].cost_usd == Decimal("0.000000044")  # exact, not a float
    assert by_model["large"].total_tokens == 10
    assert [m.model for m in stats.by_model] == ["large", "small"]


async def test_one_checkout_three_round_trips(store: PostgresStore, engine: AsyncEngine) -> None:
    run_id = await _sample(store)
    await store.get_run_page(run_id, actor="alice")  # statements prepared once per connection
    with traffic(engine) as seen:
        await store.get_run_page(run_id, actor="alice", steps_limit=200)
    assert seen.checkouts == 1
    assert len(seen.queries) <= 3, seen.queries
    # The same reads one store method at a time, as the page did: the instrument counts.
    with traffic(engine) as single:
        await store.get_run(run_id, actor="alice")
        await store.get_run_stats(run_id, actor="alice")
        await store.list_steps(run_id, actor="alice", limit=200)
        await store.get_llm_calls(run_id, actor="alice")
        await store.get_artifacts(run_id, actor="alice")
    assert single.checkouts == 5
    assert len(single.queries) >= 8, single.queries


async def test_the_owner_rule_is_get_runs(store: PostgresStore) -> None:
    run_id = await _sample(store)
    with pytest.raises(ForbiddenError):
        await store.get_run_page(run_id, actor="mallory")
    with pytest.raises(NotFoundError):
        await store.get_run_page(uuid.uuid4(), actor="alice")
