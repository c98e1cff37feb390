"""Run history: step ingestion and run listing through the library, beside raw asyncpg.

Usage: python -m bench.ingest [--steps N] [--runs 10000,1000000]

- `save_steps` (batches of 1000) vs `copy_records_to_table` of the same rows (~500-byte
  JSON payloads), rows/s;
- the same with the StepCreate inputs built before the clock starts (the store alone);
- single `save_step` calls vs a single-row asyncpg INSERT + commit, and again on an engine
  without `pool_pre_ping` to show the pre-ping's share;
- `list_runs` for one actor owning 10k and 1M runs: first page, a deep cursor page, and
  `count_runs` (the total: exact, and capped at 10,000 as GET /runs counts), p50/p95,
  with the raw SQL beside it and EXPLAIN of the query.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

from bench.common import (
    create_database,
    drop_database,
    load_line,
    raw_connection,
    say,
    sqlalchemy_url,
    table,
    timed_passes,
)


def payload(i: int) -> dict[str, Any]:
    """About 500 bytes of JSON, shaped like a tool call's input and output."""
    return {
        "tool": "search",
        "query": f"what is the status of order {i} and when will it ship " * 2,
        "args": {"limit": 10, "filters": {"region": "eu", "tags": ["a", "b", "c"]}},
        "result": {"hits": [{"id": i * 10 + j, "score": 0.5 + j / 100} for j in range(5)]},
    }


STEP_COPY_COLUMNS = ["id", "run_id", "step_index", "name", "type", "status", "input", "metadata"]


async def copy_steps(conn: Any, run_id: uuid.UUID, indexes: range) -> None:
    """The raw baseline: the same steps `save_steps` writes, through binary COPY."""
    await conn.copy_records_to_table(
        "steps",
        records=[
            (uuid.uuid4(), run_id, i, "tool", "tool", "succeeded", json.dumps(payload(i)), "{}")
            for i in indexes
        ],
        columns=STEP_COPY_COLUMNS,
    )


async def steps(db: str, n: int, singles: int) -> list[list[Any]]:
    from chad_memory import PostgresStore, RunCreate, StepCreate
    from chad_memory.database import create_engine, get_session_factory

    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PostgresStore(get_session_factory(engine))
    size = len(json.dumps(payload(1)))
    say(f"step payload: {size} bytes of JSON")
    conn = await raw_connection(db)

    copy_run = await store.save_run(RunCreate(actor="alice", name="copy"))
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        await copy_steps(conn, copy_run.id, range(start, min(n, start + 1000)))
    copy_rate = n / (time.perf_counter() - t0)

    lib_run = await store.save_run(RunCreate(actor="alice", name="library"))
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        await store.save_steps(
            [
                StepCreate(
                    run_id=lib_run.id, step_index=i, name="tool", type="tool", input=payload(i)
                )
                for i in range(start, min(n, start + 1000))
            ]
        )
    lib_rate = n / (time.perf_counter() - t0)
    say(f"steps: COPY {copy_rate:,.0f} rows/s, save_steps {lib_rate:,.0f} rows/s")

    # The same, with the StepCreate models (pydantic validation) built before the clock
    # starts: what the store itself costs beyond validating its input.
    pre_run = await store.save_run(RunCreate(actor="alice", name="prebuilt"))
    batches = [
        [
            StepCreate(run_id=pre_run.id, step_index=i, name="tool", type="tool", input=payload(i))
            for i in range(start, min(n, start + 1000))
        ]
        for start in range(0, n, 1000)
    ]
    t0 = time.perf_counter()
    for batch in batches:
        await store.save_steps(batch)
    store_rate = n / (time.perf_counter() - t0)
    say(f"steps: save_steps with inputs prebuilt {store_rate:,.0f} rows/s")

    single_run = await store.save_run(RunCreate(actor="alice", name="single"))
    raw_run = await store.save_run(RunCreate(actor="alice", name="raw-single"))

    async def one_lib(i: int) -> Any:
        return await store.save_step(
            StepCreate(
                run_id=single_run.id,
                step_index=i + single_offset[0],
                name="tool",
                type="tool",
                input=payload(i),
            )
        )

    async def one_raw(i: int) -> Any:
        async with conn.transaction():
            return await conn.fetchrow(
                "INSERT INTO steps (id, run_id, step_index, name, type, status, input) "
                "VALUES ($1, $2, $3, 'tool', 'tool', 'succeeded', $4) RETURNING *",
                uuid.uuid4(),
                raw_run.id,
                i + single_offset[0],
                json.dumps(payload(i)),
            )

    # pool_pre_ping is a required setting; an engine without it shows its share.
    no_ping_engine = create_engine(sqlalchemy_url(db), pool_size=2, pool_pre_ping=False)
    no_ping_store = PostgresStore(get_session_factory(no_ping_engine))
    no_ping_run = await store.save_run(RunCreate(actor="alice", name="single-no-ping"))

    async def one_no_ping(i: int) -> Any:
        return await no_ping_store.save_step(
            StepCreate(
                run_id=no_ping_run.id,
                step_index=i + single_offset[0],
                name="tool",
                type="tool",
                input=payload(i),
            )
        )

    single_offset = [0]
    lib_p50s: list[float] = []
    raw_p50s: list[float] = []
    no_ping_p50s: list[float] = []
    for _ in range(3):
        lib_p50, _, _ = await timed_passes(one_lib, singles, repeats=1)
        raw_p50, _, _ = await timed_passes(one_raw, singles, repeats=1)
        no_ping_p50, _, _ = await timed_passes(one_no_ping, singles, repeats=1)
        single_offset[0] += singles
        lib_p50s.append(lib_p50)
        raw_p50s.append(raw_p50)
        no_ping_p50s.append(no_ping_p50)
    lib_p50, raw_p50 = sorted(lib_p50s)[1], sorted(raw_p50s)[1]
    no_ping_p50 = sorted(no_ping_p50s)[1]
    say(
        f"single step: save_step p50 {lib_p50:.2f} ms (pre-ping off {no_ping_p50:.2f} ms), "
        f"raw INSERT+commit p50 {raw_p50:.2f} ms"
    )
    await conn.close()
    await no_ping_engine.dispose()
    await engine.dispose()
    return [
        [
            "save_steps (batches of 1000) vs COPY",
            f"{lib_rate:,.0f} rows/s",
            f"{copy_rate:,.0f} rows/s",
            lib_rate / copy_rate,
            ">= 0.50",
        ],
        [
            "save_steps, StepCreate inputs built beforehand (information)",
            f"{store_rate:,.0f} rows/s",
            f"{copy_rate:,.0f} rows/s",
            store_rate / copy_rate,
            "-",
        ],
        [
            "save_step vs single-row INSERT + commit",
            f"{1000 / lib_p50:,.0f} rows/s (p50 {lib_p50:.2f} ms)",
            f"{1000 / raw_p50:,.0f} rows/s (p50 {raw_p50:.2f} ms)",
            raw_p50 / lib_p50,
            ">= 0.80",
        ],
        [
            "save_step with pool_pre_ping off (information: the pre-ping's share)",
            f"{1000 / no_ping_p50:,.0f} rows/s (p50 {no_ping_p50:.2f} ms)",
            f"{1000 / raw_p50:,.0f} rows/s (p50 {raw_p50:.2f} ms)",
            raw_p50 / no_ping_p50,
            f"pre-ping = {(lib_p50 - no_ping_p50) / lib_p50:.0%} of save_step",
        ],
    ]


LIST_SQL = "SELECT * FROM runs WHERE actor = $1 {cursor}ORDER BY created_at DESC, id DESC LIMIT 51"


async def runs_at(n: int) -> tuple[list[list[Any]], str]:
    from chad_memory import PostgresStore, RunFilter
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.stores.paging import CursorCodec

    db = await create_database("bench_runs")
    conn = await raw_connection(db)
    t0 = time.perf_counter()
    await conn.execute(
        "INSERT INTO runs (id, actor, name, status, created_at, updated_at) "
        "SELECT gen_random_uuid(), 'alice', 'run ' || g, 'succeeded', "
        "now() - g * interval '1 second', now() FROM generate_series(1, $1) g",
        n,
    )
    await conn.execute(
        "INSERT INTO runs (id, actor, status) SELECT gen_random_uuid(), 'bob', 'succeeded' "
        "FROM generate_series(1, 1000)"
    )
    await conn.execute("VACUUM ANALYZE runs")
    say(f"runs: {n:,} for one actor loaded in {time.perf_counter() - t0:.0f} s")
    deep = await conn.fetchrow(
        "SELECT created_at, id FROM runs WHERE actor = 'alice' "
        "ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
        int(n * 0.9),
    )
    cursor = CursorCodec().encode("runs", [deep["created_at"], deep["id"]])
    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PostgresStore(get_session_factory(engine))
    f = RunFilter(actor="alice")
    rows: list[list[Any]] = []
    cases: list[tuple[str, Any, Any]] = [
        (
            "first page",
            lambda i: store.list_runs(f, limit=50),
            lambda i: conn.fetch(LIST_SQL.format(cursor=""), "alice"),
        ),
        (
            "deep cursor page (90%)",
            lambda i: store.list_runs(f, limit=50, cursor=cursor),
            lambda i: conn.fetch(
                LIST_SQL.format(cursor="AND (created_at, id) < ($2, $3) "),
                "alice",
                deep["created_at"],
                deep["id"],
            ),
        ),
        (
            "total (count_runs, exact)",
            lambda i: store.count_runs(f),
            lambda i: conn.fetchval("SELECT count(*) FROM runs WHERE actor = $1", "alice"),
        ),
        (
            "total capped at 10,000 (count_runs cap=10000, GET /runs default)",
            lambda i: store.count_runs(f, cap=10_000),
            lambda i: conn.fetchval(
                "SELECT count(*) FROM (SELECT id FROM runs WHERE actor = $1 LIMIT 10001) s",
                "alice",
            ),
        ),
    ]
    for name, lib, raw in cases:
        p50, p95, _ = await timed_passes(lib, 30)
        raw_p50, _, _ = await timed_passes(raw, 30)
        rows.append([f"{n:,}", name, p50, p95, raw_p50, p50 / raw_p50])
        say(f"runs {n:,} {name}: p50 {p50:.2f} p95 {p95:.2f} raw p50 {raw_p50:.2f}")
    plan = await conn.fetch(
        "EXPLAIN " + LIST_SQL.format(cursor="AND (created_at, id) < ($2, $3) "),
        "alice",
        deep["created_at"],
        deep["id"],
    )
    count_plan = await conn.fetch("EXPLAIN SELECT count(*) FROM runs WHERE actor = $1", "alice")
    explain = "\n".join(r[0] for r in plan) + "\n\n" + "\n".join(r[0] for r in count_plan)
    await conn.close()
    await engine.dispose()
    await drop_database(db)
    return rows, explain


async def main(n_steps: int, singles: int, run_sizes: list[int]) -> None:
    say(f"load: {load_line()}")
    db = await create_database("bench_steps")
    try:
        step_rows = await steps(db, n_steps, singles)
    finally:
        await drop_database(db)
    print(f"### Step ingestion, {n_steps:,} steps with ~500-byte JSON payloads")
    print()
    print(table(["what", "library", "raw asyncpg", "library / raw", "target"], step_rows))
    print()
    list_rows: list[list[Any]] = []
    explains: list[str] = []
    for n in run_sizes:
        rows, explain = await runs_at(n)
        list_rows += rows
        explains.append(f"-- {n:,} runs\n{explain}")
    print("### Listing runs for one actor (library `list_runs` / `count_runs`, limit 50)")
    print()
    print(
        table(["runs", "query", "p50 ms", "p95 ms", "raw asyncpg p50 ms", "ours / raw"], list_rows)
    )
    print()
    print("EXPLAIN (deep cursor page, then the total):")
    print()
    print("```")
    print("\n\n".join(explains))
    print("```")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=int(os.environ.get("STEPS", "50000")))
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--runs", default=os.environ.get("RUN_SIZES", "10000,1000000"))
    args = parser.parse_args()
    asyncio.run(main(args.steps, args.singles, [int(x) for x in args.runs.split(",")]))
