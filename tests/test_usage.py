"""Usage analytics equal a Python aggregation over the same calls, roll-up or not."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import InvalidInputError, LLMCallCreate, PostgresStore, RunCreate
from chad_memory.schemas import UsageGroupBy, UsageReport

BASE = datetime(2026, 11, 1, tzinfo=UTC)
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", None), (None, "x")]


async def _seed(
    store: PostgresStore, factory: async_sessionmaker[AsyncSession], actor: str, n: int
) -> list[dict[str, Any]]:
    """n calls over ~3 days for `actor`, each moved to a chosen created_at (an UPDATE, so
    the roll-up's update trigger is exercised too). Returns what was stored, as dicts."""
    rng = random.Random(actor)
    runs = [
        await store.save_run(RunCreate(actor=actor, name=f"job-{i % 3}" if i % 4 else None))
        for i in range(6)
    ]
    calls = []
    for _ in range(n):
        provider, model = rng.choice(MODELS)
        prompt = rng.randint(0, 5000)
        completion = rng.randint(0, 800)
        call = await store.save_llm_call(
            LLMCallCreate(
                run_id=rng.choice(runs).id,
                provider=provider,
                model=model,
                prompt_tokens=prompt,
                cached_tokens=rng.randint(0, prompt),
                completion_tokens=completion,
                reasoning_tokens=rng.randint(0, completion),
                cost_usd=rng.choice([None, Decimal(rng.randint(0, 10**6)) / 10**9]),
                latency_ms=rng.choice([None, rng.lognormvariate(6, 1), 0.5]),
                status=rng.choice(["succeeded", "succeeded", "failed"]),
            )
        )
        at = BASE + timedelta(minutes=rng.randint(0, 3 * 24 * 60), seconds=rng.random() * 60)
        calls.append((call.id, at))
    async with factory() as session, session.begin():
        for call_id, at in calls:
            await session.execute(
                text("UPDATE llm_calls SET created_at = :at WHERE id = :id"),
                {"at": at, "id": call_id},
            )
        rows = await session.execute(
            text(
                "SELECT c.*, r.name AS run_name FROM llm_calls c JOIN runs r ON r.id = c.run_id "
                "WHERE c.actor = :actor"
            ),
            {"actor": actor},
        )
        return [dict(r._mapping) for r in rows]


def _label(call: dict[str, Any], group_by: str) -> str | None:
    at: datetime = call["created_at"].astimezone(UTC)
    if group_by == "day":
        return at.date().isoformat()
    if group_by == "hour":
        return at.replace(minute=0, second=0, microsecond=0).isoformat()
    value = call["run_name" if group_by == "run_name" else group_by]
    return None if value is None else str(value)


def _bucket(latency: float) -> int:
    return 0 if latency < 1 else 1 + math.floor(4 * math.log(latency) / math.log(2))


def _check(
    report: UsageReport, calls: list[dict[str, Any]], start: datetime, end: datetime
) -> None:
    chosen = [c for c in calls if start <= c["created_at"] < end]
    groups: dict[tuple[str | None, ...], list[dict[str, Any]]] = defaultdict(list)
    for c in chosen:
        groups[tuple(_label(c, d) for d in report.group_by)].append(c)
    keys = [tuple(r.group[d] for d in report.group_by) for r in report.rows]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(groups)
    assert chosen, "the window should hold calls"
    for key, row in zip(keys, report.rows, strict=True):
        mine = groups[key]
        assert row.calls == len(mine)
        assert row.runs == len({c["run_id"] for c in mine})
        for name in (
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ):
            assert getattr(row, name) == sum(c[name] for c in mine), name
        assert row.cost_usd == sum((c["cost_usd"] or 0) for c in mine)
        assert row.costed_calls == sum(c["cost_usd"] is not None for c in mine)
        assert row.error_share == sum(c["status"] == "failed" for c in mine) / len(mine)
        latencies = sorted(c["latency_ms"] for c in mine if c["latency_ms"] is not None)
        for p, got in ((0.5, row.latency_ms_p50), (0.95, row.latency_ms_p95)):
            if not latencies:
                assert got is None
                continue
            exact = latencies[max(1, math.ceil(p * len(latencies))) - 1]
            assert got is not None
            # The reported value is the mean of the bucket holding the exact rank.
            same_bucket = [x for x in latencies if _bucket(x) == _bucket(exact)]
            assert got == pytest.approx(sum(same_bucket) / len(same_bucket))


GROUPINGS: list[list[UsageGroupBy]] = [
    ["model"],
    ["provider"],
    ["day"],
    ["hour"],
    ["run_name"],
    ["model", "day"],
    ["run_name", "hour"],
]


@pytest.mark.parametrize("group_by", GROUPINGS)
async def test_usage_equals_python_over_the_same_calls(
    store: PostgresStore,
    session_factory: async_sessionmaker[AsyncSession],
    group_by: list[UsageGroupBy],
) -> None:
    calls = await _seed(store, session_factory, "alice", 80)
    await _seed(store, session_factory, "bob", 10)  # never in alice's numbers
    gb = group_by
    # Whole hours from the roll-up, with partial hours at both ends read from the calls.
    start = BASE + timedelta(hours=5, minutes=17, seconds=3)
    end = BASE + timedelta(days=2, hours=11, minutes=42)
    report = await store.usage("alice", group_by=gb, from_=start, to=end)
    assert (report.from_, report.to) == (start, end)
    _check(report, calls, start, end)
    # A window inside one hour: only raw calls.
    inner = (BASE + timedelta(hours=30, minutes=1), BASE + timedelta(hours=30, minutes=59))
    if any(inner[0] <= c["created_at"] < inner[1] for c in calls):
        _check(await store.usage("alice", group_by=gb, from_=inner[0], to=inner[1]), calls, *inner)
    # The whole seeded span, hour-aligned: only the roll-up.
    whole = (BASE, BASE + timedelta(days=3, hours=1))
    _check(await store.usage("alice", group_by=gb, from_=whole[0], to=whole[1]), calls, *whole)


async def test_usage_follows_deletes_and_recomputed_costs(
    store: PostgresStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    calls = await _seed(store, session_factory, "alice", 40)
    window = (BASE, BASE + timedelta(days=4))
    gone = calls[0]["run_id"]
    await store.delete_run(gone)
    async with session_factory() as session, session.begin():
        await session.execute(text("UPDATE llm_calls SET cost_usd = 1, model = 'renamed'"))
        fresh = [
            dict(r._mapping)
            for r in await session.execute(
                text("SELECT c.*, NULL AS run_name FROM llm_calls c WHERE actor = 'alice'")
            )
        ]
        leftovers = await session.scalar(
            text("SELECT count(*) FROM llm_usage_runs WHERE run_id = :r"), {"r": gone}
        )
    assert leftovers == 0
    assert {c["run_id"] for c in fresh} == {c["run_id"] for c in calls} - {gone}
    report = await store.usage("alice", group_by="model", from_=window[0], to=window[1])
    _check(report, fresh, *window)
    assert [r.group for r in report.rows] == [{"model": "renamed"}]


async def test_usage_window_rules(store: PostgresStore) -> None:
    now = datetime.now(UTC)
    empty = await store.usage("nobody")
    assert empty.rows == []
    assert empty.to - empty.from_ == timedelta(days=30)
    with pytest.raises(InvalidInputError, match="before"):
        await store.usage("a", from_=now, to=now)
    with pytest.raises(InvalidInputError, match="31 days"):
        await store.usage("a", group_by="hour", from_=now - timedelta(days=40), to=now)
    # The edges of the datetime range are an answer or a 422, never an overflow.
    with pytest.raises(InvalidInputError, match="too early"):
        await store.usage("a", to=datetime(1, 1, 2, tzinfo=UTC))
    last = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
    late = await store.usage("a", from_=last, to=last + timedelta(minutes=29))
    assert late.rows == []
    for bad in ("week", ["model", "model"], ["model", "day", "hour"], []):
        with pytest.raises(InvalidInputError, match="group_by"):
            await store.usage("a", group_by=bad, from_=now - timedelta(days=1))  # type: ignore[arg-type]
