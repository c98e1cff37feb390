"""What the pool per event loop costs a checkout: `get_run` on an engine from
`create_engine` (LoopPool) against the same engine settings on SQLAlchemy's own
AsyncAdaptedQueuePool, in the same run, rounds interleaved.

    .venv/bin/python -m bench.loop_pool --calls 2000 --concurrency 16

Each round times `calls` sequential `get_run` calls (one checkout, one statement each:
p50 / p95 ms), then `calls` calls spread over `concurrency` tasks (calls/s), then
5 x `calls` bare checkouts (no statement: the pool's own cost), first on one engine, then
on the other; ratios are to the baseline's median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool

from bench.common import (
    create_database,
    drop_database,
    load_line,
    say,
    sqlalchemy_url,
    table,
    timed_passes,
)


async def _checkouts(engine: Any, count: int) -> float:
    """Checkouts per second with no statement: the pool's own cost, no round trip."""
    t0 = time.perf_counter()
    for _ in range(count):
        async with engine.connect():
            pass
    return count / (time.perf_counter() - t0)


async def _throughput(store: Any, run_id: Any, calls: int, concurrency: int) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await store.get_run(run_id)

    share = [calls // concurrency] * concurrency
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in share))
    return sum(share) / (time.perf_counter() - t0)


async def main(calls: int, concurrency: int, rounds: int) -> None:
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.schemas import RunCreate
    from chad_memory.stores import PostgresStore

    db = await create_database("loop_pool")
    url = sqlalchemy_url(db)
    engines = {
        "create_engine (pool per loop)": create_engine(url, pool_size=concurrency),
        "baseline: AsyncAdaptedQueuePool": create_engine(
            url, pool_size=concurrency, poolclass=AsyncAdaptedQueuePool
        ),
    }
    try:
        stores = {name: PostgresStore(get_session_factory(e)) for name, e in engines.items()}
        first = next(iter(stores.values()))
        run_id = (await first.save_run(RunCreate(actor="bench", name="r"))).id
        figures: dict[str, dict[str, list[float]]] = {
            name: {"p50": [], "p95": [], "rate": [], "checkouts": []} for name in stores
        }
        for store in stores.values():  # warm: open the pools
            await _throughput(store, run_id, concurrency * 4, concurrency)
        for r in range(rounds):
            for name, store in stores.items():

                async def one(_i: int, s: Any = store) -> Any:
                    return await s.get_run(run_id)

                p50, p95, _ = await timed_passes(one, calls, repeats=1)
                rate = await _throughput(store, run_id, calls, concurrency)
                figures[name]["checkouts"].append(await _checkouts(engines[name], calls * 5))
                figures[name]["p50"].append(p50)
                figures[name]["p95"].append(p95)
                figures[name]["rate"].append(rate)
                say(
                    f"round {r + 1} {name}: p50 {p50:.3f} ms, {rate:,.0f} calls/s, "
                    f"{figures[name]['checkouts'][-1]:,.0f} checkouts/s"
                )
        rows = []
        base = figures["baseline: AsyncAdaptedQueuePool"]
        for name, f in figures.items():
            rate, checkouts = statistics.median(f["rate"]), statistics.median(f["checkouts"])
            rows.append(
                [
                    name,
                    statistics.median(f["p50"]),
                    statistics.median(f["p95"]),
                    f"{rate:,.0f} ({rate / statistics.median(base['rate']):.2f}x)",
                    f"{checkouts:,.0f} ({checkouts / statistics.median(base['checkouts']):.2f}x)",
                ]
            )
        print(f"#### get_run, {calls} calls a round, {concurrency} tasks, median of {rounds}")
        print(table(["engine", "p50 ms", "p95 ms", "calls/s (concurrent)", "checkouts/s"], rows))
        print(f"\nload: {load_line()}")
    finally:
        for engine in engines.values():
            await engine.dispose()
        await drop_database(db)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.concurrency, args.rounds))
