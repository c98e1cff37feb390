"""A process waiting for the vector maintenance lock must not stall the holder's
CREATE INDEX CONCURRENTLY: blocked in `pg_advisory_lock`, the waiter held a snapshot the
build waited for, while the waiter waited for the build's lock: a hang the server's
deadlock detector cannot see (seen as a suite stuck for 20 minutes in the recall test)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory.vector_index import MAINTENANCE_LOCK_KEY, maintenance_lock


async def test_a_waiter_does_not_block_the_holders_concurrent_build(engine: AsyncEngine) -> None:
    holder = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with holder.connect() as conn:
        assert await conn.scalar(
            text("SELECT pg_try_advisory_lock(:k)"), {"k": MAINTENANCE_LOCK_KEY}
        )
        entered = asyncio.Event()

        async def waiter() -> None:
            async with maintenance_lock(engine, wait=True) as got:
                assert got
                entered.set()

        waiting = asyncio.create_task(waiter())
        await asyncio.sleep(0.5)  # the waiter is asking by now
        assert not entered.is_set()
        await conn.execute(text("SET statement_timeout = '20s'"))
        await conn.execute(text("CREATE INDEX CONCURRENTLY ix_lock_probe ON runs (name)"))
        await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MAINTENANCE_LOCK_KEY})
        await asyncio.wait_for(waiting, 20)
        assert entered.is_set()
