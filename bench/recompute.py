"""`POST /prices/recompute`'s work: N stored LLM calls priced again, the chunked SQL
batch against the per-call loop it replaced (kept here as the same-run baseline).

    .venv/bin/python -m bench.recompute --calls 5000

Half the calls match a user price (`model_prices`), half a model genai-prices knows;
every cost starts empty, so each recompute prices every call. The baseline is the old
loop: one user-price query per call, one UPDATE per changed call, in chunks of 500.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, tuple_, update

from bench.common import (
    create_database,
    drop_database,
    load_line,
    raw_connection,
    say,
    sqlalchemy_url,
    table,
)

RESET = (
    "UPDATE llm_calls SET cost_usd = NULL, cost_source = NULL, price_id = NULL, price_ref = NULL"
)


async def _old_loop(factory: object, since: datetime) -> int:
    """The per-call recompute as it was: a price lookup and an UPDATE per call."""
    from chad_memory.models import LLMCall
    from chad_memory.prices import price_names, quote, tokens_of
    from chad_memory.schemas import LLMCallRecord

    changed = 0
    after: tuple[datetime, object] | None = None
    while True:
        stmt = select(LLMCall).where(LLMCall.created_at >= since, LLMCall.cost_usd.is_(None))
        if after is not None:
            stmt = stmt.where(tuple_(LLMCall.created_at, LLMCall.id) > tuple_(*after))
        stmt = stmt.order_by(LLMCall.created_at, LLMCall.id).limit(500)
        async with factory() as session, session.begin():  # type: ignore[operator]
            rows = list(await session.scalars(stmt.with_for_update()))
            for row in rows:
                call = LLMCallRecord.model_validate(row)
                found = await quote(
                    session,
                    actor=row.actor,
                    provider=call.provider,
                    models=price_names(call),
                    tokens=tokens_of(call),
                    at=call.created_at,
                )
                if found is None:
                    continue
                changed += 1
                await session.execute(
                    update(LLMCall)
                    .where(LLMCall.id == call.id)
                    .values(
                        cost_usd=found.cost_usd,
                        cost_source="table",
                        price_id=found.price_id,
                        price_ref=found.price_ref,
                    )
                )
        if len(rows) < 500:
            return changed
        after = (rows[-1].created_at, rows[-1].id)


async def main(calls: int) -> None:
    from chad_memory import ModelPriceCreate, PriceStore
    from chad_memory.database import create_engine, get_session_factory

    db = await create_database("bench_recompute")
    conn = await raw_connection(db)
    engine = create_engine(sqlalchemy_url(db), pool_size=2, max_overflow=0)
    factory = get_session_factory(engine)
    try:
        since = datetime.now(UTC) - timedelta(days=2)
        await conn.execute(
            "INSERT INTO runs (id, actor, name) SELECT gen_random_uuid(), 'alice', 'r' || i "
            "FROM generate_series(1, $1) i",
            max(1, calls // 10),
        )
        await conn.execute(
            "INSERT INTO llm_calls (id, run_id, actor, provider, model, prompt_tokens, "
            "completion_tokens, total_tokens, created_at) "
            "SELECT gen_random_uuid(), r.id, 'alice', "
            "CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'openai' END, "
            "CASE WHEN i % 2 = 0 THEN 'acme-1' ELSE 'gpt-4o-mini' END, "
            "1000 + i % 50, 100, 1100 + i % 50, now() - (i || ' seconds')::interval "
            "FROM generate_series(1, $1) i "
            "JOIN LATERAL (SELECT id FROM runs OFFSET i % $2 LIMIT 1) r ON true",
            calls,
            max(1, calls // 10),
        )
        prices = PriceStore(factory)
        await prices.set_price(
            ModelPriceCreate(
                provider="acme",
                model_pattern="acme-1",
                starts_at=since - timedelta(days=1),
                input_mtok=2,
                output_mtok=8,
            ),
            actor="alice",
        )
        rows = []
        jobs: tuple[tuple[str, Callable[[], Awaitable[int]]], ...] = (
            ("per-call loop (before)", lambda: _old_loop(factory, since)),
            ("chunked SQL batch (after)", lambda: prices.recompute(since=since, actor="alice")),
            ("per-call loop (before)", lambda: _old_loop(factory, since)),
            ("chunked SQL batch (after)", lambda: prices.recompute(since=since, actor="alice")),
        )
        for name, work in jobs:
            await conn.execute(RESET)
            t0 = time.perf_counter()
            changed = await work()
            elapsed = time.perf_counter() - t0
            rows.append([name, calls, changed, elapsed, elapsed / calls * 1000])
            say(f"{name}: {elapsed:.2f} s")
        print(table(["recompute", "calls", "changed", "seconds", "ms per call"], rows))
        print(load_line())
    finally:
        await conn.close()
        await engine.dispose()
        await drop_database(db)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    asyncio.run(main(parser.parse_args().calls))
