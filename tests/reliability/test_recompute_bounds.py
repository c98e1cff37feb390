"""Round three (issue 22), class 13: `POST /prices/recompute` over 5,000 calls took 16 s
in one request, about 3 ms and two statements a call. Now a chunk of calls costs a fixed
number of statements, and one request does a bounded share, then says where to go on."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chad_memory import ModelPriceCreate, PriceStore
from chad_memory.stores import prices as price_store
from tests.reliability.conftest import serve

CALLS = 1_200


@contextmanager
def counted(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement the engine sends while the block runs."""
    sent: list[str] = []

    def note(*args: Any) -> None:
        sent.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


async def _calls(engine: AsyncEngine, actor: str, count: int) -> None:
    async with engine.begin() as conn:
        run = await conn.scalar(
            text(
                "INSERT INTO runs (id, actor, name) "
                "VALUES (gen_random_uuid(), :a, 'r') RETURNING id"
            ),
            {"a": actor},
        )
        await conn.execute(
            text(
                "INSERT INTO llm_calls (id, run_id, actor, provider, model, prompt_tokens, "
                "completion_tokens, total_tokens, created_at) "
                "SELECT gen_random_uuid(), :run, :a, "
                "CASE WHEN i % 3 = 0 THEN 'openai' ELSE 'acme' END, "
                "CASE WHEN i % 3 = 0 THEN 'gpt-4o-mini' ELSE 'acme-1' END, 1000, 10, 1010, "
                "now() - (i || ' seconds')::interval FROM generate_series(1, :n) i"
            ),
            {"run": run, "a": actor, "n": count},
        )


async def _price(factory: async_sessionmaker[AsyncSession], actor: str) -> None:
    await PriceStore(factory).set_price(
        ModelPriceCreate(
            provider="acme",
            model_pattern="acme-1",
            starts_at=datetime.now(UTC) - timedelta(days=1),
            input_mtok=2,
            output_mtok=8,
        ),
        actor=actor,
    )


async def test_statements_per_recompute_do_not_grow_with_calls(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await _calls(engine, "alice", CALLS)
    await _price(session_factory, "alice")
    since = datetime.now(UTC) - timedelta(hours=2)
    with counted(engine) as sent:
        changed = await PriceStore(session_factory).recompute(since=since, actor="alice")
    assert changed == CALLS
    chunks = math.ceil(CALLS / price_store.RECOMPUTE_CHUNK)
    # A read and an update per chunk (and a last, empty read), never one per call.
    assert len(sent) <= 2 * chunks + 2, len(sent)
    async with engine.connect() as conn:
        costs = (
            await conn.execute(
                text(
                    "SELECT model, count(*), min(cost_usd), max(cost_usd), count(price_id) "
                    "FROM llm_calls WHERE cost_source = 'table' GROUP BY model ORDER BY model"
                )
            )
        ).all()
    user = (1000 * 2 + 10 * 8) / 1_000_000
    assert [(m, n, float(lo) == float(hi), p) for m, n, lo, hi, p in costs] == [
        ("acme-1", CALLS - CALLS // 3, True, CALLS - CALLS // 3),
        ("gpt-4o-mini", CALLS // 3, True, 0),
    ]
    assert float(costs[0][2]) == pytest.approx(user)
    assert await PriceStore(session_factory).recompute(since=since, actor="alice") == 0


async def test_one_request_does_a_bounded_share_and_says_where_to_go_on(
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(price_store, "RECOMPUTE_MAX_CALLS", 500)
    await _calls(engine, "alice", CALLS)
    await _calls(engine, "bob", 50)
    await _price(session_factory, "alice")
    since = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    async with serve(engine) as api:
        seen, changed, answers = 0, 0, []
        body: dict[str, Any] = {"since": since}
        while True:
            answer = await api.client.post("/prices/recompute", json=body, headers=api.alice)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            answers.append(page["seen"])
            seen, changed = seen + page["seen"], changed + page["changed"]
            if page["next_cursor"] is None:
                break
            body = {"since": since, "cursor": page["next_cursor"]}
        assert answers == [500, 500, 200]
        assert (seen, changed) == (CALLS, CALLS)
        for cursor in ("forged", "x" * 600):
            bad = await api.client.post(
                "/prices/recompute", json={"since": since, "cursor": cursor}, headers=api.alice
            )
            assert bad.status_code == 422
    async with engine.connect() as conn:
        untouched = await conn.scalar(
            text("SELECT count(*) FROM llm_calls WHERE actor = 'bob' AND cost_source IS NULL")
        )
    assert untouched == 50
