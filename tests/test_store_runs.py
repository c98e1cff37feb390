"""PostgresStore against a real, migrated PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import (
    ArtifactCreate,
    ConflictError,
    InvalidInputError,
    LLMCallCreate,
    NotFoundError,
    PostgresStore,
    RunCreate,
    RunFilter,
    RunUpdate,
    StepCreate,
    ThreadCreate,
    ThreadStore,
)
from chad_memory.models import Artifact, LLMCall, Step


async def test_create_get_and_upsert_run(store: PostgresStore) -> None:
    run = await store.save_run(
        RunCreate(actor="alice", name="research", request_payload={"q": "why"}, tags=["a"])
    )
    assert run.status == "pending"
    assert run.created_at.tzinfo is not None
    fetched = await store.get_run(run.id)
    assert fetched == run

    updated = await store.save_run(
        RunCreate(id=run.id, actor="alice", name="research", status="running", result={"ok": 1})
    )
    assert updated.id == run.id
    assert updated.status == "running"
    assert updated.result == {"ok": 1}
    assert updated.created_at == run.created_at
    assert updated.updated_at >= run.updated_at
    assert await store.count_runs() == 1


async def test_upsert_refuses_another_actors_id(store: PostgresStore) -> None:
    run = await store.save_run(RunCreate(actor="alice"))
    with pytest.raises(ConflictError):
        await store.save_run(RunCreate(id=run.id, actor="mallory", name="hijack"))
    assert (await store.get_run(run.id)).name is None


async def test_idempotency_key_returns_first_run_unchanged(store: PostgresStore) -> None:
    first = await store.save_run(RunCreate(actor="alice", idempotency_key="k1", name="first"))
    again = await store.save_run(RunCreate(actor="alice", idempotency_key="k1", name="second"))
    assert again == first
    other_actor = await store.save_run(RunCreate(actor="bob", idempotency_key="k1", name="bob"))
    assert other_actor.id != first.id
    assert await store.count_runs() == 2


async def test_duplicate_trace_id_is_a_conflict(store: PostgresStore) -> None:
    await store.save_run(RunCreate(actor="alice", trace_id="t-1"))
    with pytest.raises(ConflictError):
        await store.save_run(RunCreate(actor="alice", trace_id="t-1"))


async def test_get_unknown_run(store: PostgresStore) -> None:
    with pytest.raises(NotFoundError):
        await store.get_run(uuid.uuid4())


async def test_update_run_transitions(store: PostgresStore) -> None:
    run = await store.save_run(RunCreate(actor="alice"))
    running = await store.update_run(run.id, RunUpdate(status="running"))
    assert running.started_at is not None
    done = await store.update_run(run.id, RunUpdate(status="succeeded", result={"answer": 42}))
    assert done.completed_at is not None
    assert done.result == {"answer": 42}
    with pytest.raises(ConflictError):
        await store.update_run(run.id, RunUpdate(status="running"))
    with pytest.raises(NotFoundError):
        await store.update_run(uuid.uuid4(), RunUpdate(name="x"))


async def test_list_runs_filters(
    store: PostgresStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    # runs.thread_id is a foreign key (revision 004): the thread must exist.
    thread = (
        await ThreadStore(session_factory).create_thread(
            ThreadCreate(agent_type="chat"), actor="alice"
        )
    ).id
    a = await store.save_run(
        RunCreate(actor="alice", name="n1", status="running", tags=["x", "y"], thread_id=thread)
    )
    b = await store.save_run(RunCreate(actor="alice", name="n2", status="failed", trace_id="tr"))
    await store.save_run(RunCreate(actor="bob", name="n1", tags=["x"]))

    async def ids(**filters: object) -> set[uuid.UUID]:
        page = await store.list_runs(RunFilter.model_validate(filters), limit=100)
        return {r.id for r in page.items}

    assert await ids(actor="alice") == {a.id, b.id}
    assert await ids(actor="alice", status="running") == {a.id}
    assert await ids(actor="alice", name="n2") == {b.id}
    assert await ids(actor="alice", tag="x") == {a.id}
    assert await ids(actor="alice", thread_id=thread) == {a.id}
    assert await ids(actor="alice", trace_id="tr") == {b.id}
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await ids(actor="alice", created_after=future) == set()
    assert await ids(actor="alice", created_before=future) == {a.id, b.id}
    assert await store.count_runs(RunFilter(actor="alice", tag="x")) == 1
    assert await store.count_runs(RunFilter(tag="x")) == 2


async def test_save_run_with_unknown_thread_is_not_found(store: PostgresStore) -> None:
    with pytest.raises(NotFoundError, match=r"thread .* not found"):
        await store.save_run(RunCreate(actor="alice", thread_id=uuid.uuid4()))
    run = await store.save_run(RunCreate(actor="alice"))
    with pytest.raises(NotFoundError):
        await store.update_run(run.id, RunUpdate(thread_id=uuid.uuid4()))
    assert (await store.get_run(run.id)).thread_id is None


async def test_list_runs_pagination_offset_and_cursor(store: PostgresStore) -> None:
    created = [await store.save_run(RunCreate(actor="alice", name=f"r{i}")) for i in range(7)]
    newest_first = sorted(created, key=lambda r: (r.created_at, r.id), reverse=True)

    page = await store.list_runs(RunFilter(actor="alice"), limit=3, offset=3)
    assert [r.id for r in page.items] == [r.id for r in newest_first[3:6]]

    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await store.list_runs(RunFilter(actor="alice"), limit=3, cursor=cursor)
        seen.extend(r.id for r in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [r.id for r in newest_first]

    with pytest.raises(InvalidInputError):
        await store.list_runs(limit=0)
    with pytest.raises(InvalidInputError):
        await store.list_runs(cursor="not-a-cursor")


async def test_steps_ordered_and_duplicate_index_conflicts(store: PostgresStore) -> None:
    run = await store.save_run(RunCreate(actor="alice"))
    await store.save_steps(
        [StepCreate(run_id=run.id, step_index=i, name=f"s{i}") for i in (2, 0, 1)]
    )
    single = await store.save_step(StepCreate(run_id=run.id, step_index=3, output={"x": [1]}))
    assert single.output == {"x": [1]}
    steps = await store.get_steps(run.id)
    assert [s.step_index for s in steps] == [0, 1, 2, 3]
    with pytest.raises(ConflictError):
        await store.save_step(StepCreate(run_id=run.id, step_index=1))
    # A failed batch writes nothing.
    with pytest.raises(ConflictError):
        await store.save_steps(
            [StepCreate(run_id=run.id, step_index=10), StepCreate(run_id=run.id, step_index=0)]
        )
    assert len(await store.get_steps(run.id)) == 4
    with pytest.raises(NotFoundError):
        await store.save_step(StepCreate(run_id=uuid.uuid4(), step_index=0))


async def test_artifacts_and_llm_calls(store: PostgresStore) -> None:
    run = await store.save_run(RunCreate(actor="alice"))
    art = await store.save_artifact(
        ArtifactCreate(run_id=run.id, name="report.md", size_bytes=12, sha256="a" * 64)
    )
    assert [a.id for a in await store.get_artifacts(run.id)] == [art.id]

    call = await store.save_llm_call(
        LLMCallCreate(
            run_id=run.id,
            provider="openai",
            model="gpt-x",
            prompt_tokens=10,
            completion_tokens=5,
            cost_usd=Decimal("0.00012345"),
            latency_ms=120.5,
        )
    )
    assert call.total_tokens == 15
    assert call.cost_usd == Decimal("0.00012345")
    assert isinstance(call.cost_usd, Decimal)
    assert [c.id for c in await store.get_llm_calls(run.id)] == [call.id]


async def test_run_stats_exact_sums(store: PostgresStore) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    run = await store.save_run(
        RunCreate(actor="alice", started_at=start, completed_at=start + timedelta(seconds=3))
    )
    await store.save_steps(
        [StepCreate(run_id=run.id, step_index=i, duration_ms=100.0 * (i + 1)) for i in range(3)]
    )
    calls = [
        ("openai", "a", 100, 20, "0.10000001", 100.0),
        ("openai", "a", 50, 10, "0.20000002", 200.0),
        ("anthropic", "b", 7, 3, "0.00000007", 300.0),
    ]
    for provider, model, p, c, cost, lat in calls:
        await store.save_llm_call(
            LLMCallCreate(
                run_id=run.id,
                provider=provider,
                model=model,
                prompt_tokens=p,
                completion_tokens=c,
                cost_usd=Decimal(cost),
                latency_ms=lat,
            )
        )
    stats = await store.get_run_stats(run.id)
    assert stats.step_count == 3
    assert stats.llm_call_count == 3
    assert stats.prompt_tokens == 157
    assert stats.completion_tokens == 33
    assert stats.total_tokens == 190
    assert stats.cost_usd == Decimal("0.30000010")
    assert stats.duration_ms == 3000.0
    assert stats.step_duration_ms_total == 600.0
    assert stats.latency_ms_mean == 200.0
    assert stats.latency_ms_p50 == 200.0
    assert stats.latency_ms_p95 == pytest.approx(290.0)
    assert stats.latency_ms_max == 300.0
    by_model = {(m.provider, m.model): m for m in stats.by_model}
    assert by_model[("openai", "a")].calls == 2
    assert by_model[("openai", "a")].cost_usd == Decimal("0.30000003")
    assert by_model[("anthropic", "b")].total_tokens == 10

    empty = await store.get_run_stats((await store.save_run(RunCreate(actor="a"))).id)
    assert (empty.step_count, empty.total_tokens, empty.cost_usd) == (0, 0, Decimal(0))
    assert empty.latency_ms_p95 is None
    with pytest.raises(NotFoundError):
        await store.get_run_stats(uuid.uuid4())


async def test_delete_run_cascades(
    store: PostgresStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    run = await store.save_run(RunCreate(actor="alice"))
    keep = await store.save_run(RunCreate(actor="alice"))
    for r in (run, keep):
        step = await store.save_step(StepCreate(run_id=r.id, step_index=0))
        await store.save_artifact(ArtifactCreate(run_id=r.id, step_id=step.id, name="f"))
        await store.save_llm_call(LLMCallCreate(run_id=r.id, step_id=step.id, prompt_tokens=1))
    await store.delete_run(run.id)
    with pytest.raises(NotFoundError):
        await store.get_run(run.id)
    async with session_factory() as session:
        for model in (Step, Artifact, LLMCall):
            remaining = await session.scalar(select(func.count()).select_from(model))
            assert remaining == 1, model.__tablename__
    with pytest.raises(NotFoundError):
        await store.delete_run(run.id)


@pytest.mark.parametrize(
    "bad",
    [
        {"actor": "a\x00b"},
        {"actor": "alice", "name": "x\x00"},
        {"actor": "alice", "request_payload": {"k": "v\x00"}},
        {"actor": "alice", "metadata": {"k\x00": 1}},
        {"actor": "alice", "result": {"x": float("nan")}},
        {"actor": "alice", "status": "exploded"},
        {"actor": ""},
        {"actor": "alice", "unknown_field": 1},
        {"actor": "alice", "name": "\ud800"},
    ],
)
def test_bad_run_input_is_rejected_before_sql(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RunCreate.model_validate(bad)


@pytest.mark.parametrize(
    "bad",
    [
        {"prompt_tokens": -1},
        {"cost_usd": "NaN"},
        {"cost_usd": "-0.1"},
        {"latency_ms": float("inf")},
    ],
)
def test_bad_llm_call_input_is_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LLMCallCreate.model_validate({"run_id": uuid.uuid4(), **bad})
