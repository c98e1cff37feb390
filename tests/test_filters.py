"""Run, thread and message filters return exactly what a Python filter over the rows does."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import (
    InvalidInputError,
    LLMCallCreate,
    MessageCreate,
    PostgresStore,
    RunCreate,
    RunFilter,
    ThreadCreate,
    ThreadStore,
)
from chad_memory.schemas import RunSummary

START = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def threads_store(session_factory: async_sessionmaker[AsyncSession]) -> ThreadStore:
    return ThreadStore(session_factory)


def contains(container: Any, wanted: Any) -> bool:
    """jsonb @> in Python: objects by key, arrays as "every wanted element is contained in
    some element", scalars by equality (a top-level array also contains a bare scalar)."""
    if isinstance(wanted, dict):
        return isinstance(container, dict) and all(
            k in container and contains(container[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(container, list) and all(
            any(contains(c, w) for c in container) for w in wanted
        )
    if isinstance(container, list | dict):
        return False
    return type(container) is type(wanted) and container == wanted


async def _runs(store: PostgresStore) -> tuple[list[RunSummary], dict[Any, Decimal]]:
    rng = random.Random(14)
    costs: dict[Any, Decimal] = {}
    for i in range(40):
        started = START + timedelta(minutes=i)
        run = await store.save_run(
            RunCreate(
                actor="alice",
                name=f"run-{i}",
                agent=rng.choice(["planner", "coder", None]),
                metadata=rng.choice(
                    [
                        {},
                        {"team": "search"},
                        {"team": "search", "env": {"region": "eu", "tier": 2}},
                        {"team": "ads", "labels": ["a", "b"]},
                        {"team": "ads", "labels": ["b"], "n": 1},
                    ]
                ),
                tags=rng.sample(["red", "green", "blue"], rng.randint(0, 3)),
                started_at=started,
                completed_at=rng.choice(
                    [None, started + timedelta(milliseconds=rng.randint(0, 60_000))]
                ),
            )
        )
        costs[run.id] = Decimal(0)
        for _ in range(rng.randint(0, 2)):
            cost = Decimal(rng.randint(0, 1000)) / 10**6
            await store.save_llm_call(LLMCallCreate(run_id=run.id, cost_usd=cost))
            costs[run.id] += cost
    await store.save_run(RunCreate(actor="bob", metadata={"team": "search"}, tags=["red"]))
    page = await store.list_run_summaries(RunFilter(actor="alice"), limit=1000)
    return page.items, costs


def _duration(run: RunSummary) -> float | None:
    if run.started_at is None or run.completed_at is None:
        return None
    return (run.completed_at - run.started_at).total_seconds() * 1000


FILTERS: list[dict[str, Any]] = [
    {"metadata": {"team": "search"}},
    {"metadata": {"env": {"region": "eu"}}},
    {"metadata": {"labels": ["b"]}},
    {"metadata": {"labels": "b"}},
    {"metadata": {"team": "search", "n": 1}},
    {"metadata": {}},
    {"agent": "planner"},
    {"tags_any": ["red", "blue"]},
    {"tags_all": ["red", "blue"]},
    {"min_duration_ms": 20_000},
    {"min_duration_ms": 10_000, "max_duration_ms": 40_000},
    {"min_cost_usd": Decimal("0.0005")},
    {"max_cost_usd": Decimal("0.0003")},
    {"metadata": {"team": "ads"}, "tags_any": ["green"], "agent": "coder"},
    {"metadata": {"team": "nobody"}},
]


def _python_filter(run: RunSummary, f: dict[str, Any], costs: dict[Any, Decimal]) -> bool:
    duration = _duration(run)
    checks: dict[str, Callable[[Any], bool]] = {
        "metadata": lambda v: contains(run.metadata, v),
        "agent": lambda v: run.agent == v,
        "tags_any": lambda v: bool(set(v) & set(run.tags)),
        "tags_all": lambda v: set(v) <= set(run.tags),
        "min_duration_ms": lambda v: duration is not None and duration >= v,
        "max_duration_ms": lambda v: duration is not None and duration < v,
        "min_cost_usd": lambda v: costs[run.id] >= v,
        "max_cost_usd": lambda v: costs[run.id] < v,
    }
    return all(checks[k](v) for k, v in f.items())


async def test_run_filters_equal_python_filter(store: PostgresStore) -> None:
    runs, costs = await _runs(store)
    for f in FILTERS:
        expected = [r.id for r in runs if _python_filter(r, f, costs)]
        filters = RunFilter(actor="alice", **f)
        got = await store.list_run_summaries(filters, limit=1000, with_total=True)
        assert [r.id for r in got.items] == expected, f
        assert got.total == len(expected)
        assert await store.count_runs(filters) == len(expected)
        # Paging by cursor through a filtered list yields the same rows.
        paged, cursor = [], None
        while True:
            page = await store.list_runs(filters, limit=7, cursor=cursor)
            paged += [r.id for r in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert paged == expected, f
    assert any(_python_filter(r, FILTERS[0], costs) for r in runs)
    nothing = await store.list_runs(RunFilter(actor="alice", metadata={"team": "nobody"}))
    assert (nothing.items, nothing.next_cursor) == ([], None)


async def test_threads_and_messages_filter_by_metadata(threads_store: ThreadStore) -> None:
    metas = [{}, {"topic": "billing"}, {"topic": "billing", "vip": True}, {"topic": "bugs"}]
    made = [
        await threads_store.create_thread(ThreadCreate(agent_type="chat", metadata=m), actor="al")
        for m in metas * 3
    ]
    await threads_store.create_thread(
        ThreadCreate(agent_type="chat", metadata={"topic": "billing"}), actor="bo"
    )
    wanted_threads: list[dict[str, Any]] = [{"topic": "billing"}, {"vip": True}, {"topic": "x"}]
    for wanted in wanted_threads:
        expected = {t.id for t in made if contains(t.metadata, wanted)}
        page = await threads_store.list_threads("al", limit=100, metadata=wanted)
        assert {t.id for t in page.items} == expected
        assert await threads_store.count_threads("al", metadata=wanted) == len(expected)

    thread = made[0]
    sent = [
        await threads_store.add_message(
            thread.id, MessageCreate(role="user", content=str(i), metadata=m)
        )
        for i, m in enumerate(metas * 2)
    ]
    wanted_messages: list[dict[str, Any]] = [{"topic": "billing"}, {"topic": "bugs"}, {"x": 1}]
    for wanted in wanted_messages:
        expected_ids = [m.id for m in sent if contains(m.metadata, wanted)]
        got = await threads_store.list_messages(thread.id, limit=100, metadata=wanted)
        assert [m.id for m in got.items] == expected_ids
        assert await threads_store.count_messages(thread.id, metadata=wanted) == len(expected_ids)
    with pytest.raises(InvalidInputError, match="JSON object"):
        await threads_store.list_threads("al", metadata=["topic"])  # type: ignore[arg-type]


def test_python_containment_matches_postgres_rules() -> None:
    assert contains({"a": [1, 2]}, {"a": [2]})
    assert contains({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}})
    assert not contains({"a": 1}, {"a": True})
    assert not contains({"a": [1]}, {"a": 1})
