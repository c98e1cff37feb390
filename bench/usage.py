"""Usage analytics at 1M LLM calls and metadata-filtered run lists at 1M runs.

    .venv/bin/python -m bench.usage --calls 1000000 --runs 1000000

Usage: 1M calls of one actor over 30 days (5 models, ~10 calls a run), loaded with one
INSERT ... SELECT generate_series (the roll-up triggers fire once, for the statement).
`PostgresStore.usage` over the last 30 days by model and by day, against the best
hand-written SQL over the raw llm_calls for the same answer (exact percentiles and
distinct runs), and against the roll-up queries sent raw (library overhead).

Runs: 1M runs of one actor with metadata {"team": t(i % 1000), "customer": c(i % 10000)};
the first page (50) of `list_run_summaries` with a selective metadata filter against the
unfiltered first page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
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

MODELS = "ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4-5', 'gemini-2.5-flash', 'o3']"
PROVIDERS = "ARRAY['openai', 'openai', 'anthropic', 'google', 'openai']"
# The same answer as usage(group_by=...) over the raw table, written by hand: exact
# percentiles and distinct runs straight from llm_calls (index on actor, created_at).
RAW_SQL = """
SELECT {keys}, count(*), count(DISTINCT run_id), sum(prompt_tokens),
       sum(completion_tokens), sum(total_tokens), sum(cached_tokens), sum(cache_write_tokens),
       sum(reasoning_tokens), coalesce(sum(cost_usd), 0), count(cost_usd),
       percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms),
       avg((status = 'failed')::int)
FROM llm_calls WHERE actor = $1 AND created_at >= $2 AND created_at < $3
GROUP BY {n}
"""
RAW_KEYS = {"model": "coalesce(model, '')", "day": "date_trunc('day', created_at, 'UTC')"}


async def usage_bench(n_calls: int) -> tuple[list[list[Any]], str]:
    from chad_memory import PostgresStore
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.stores.analytics import USAGE_WORK_MEM, usage_sql

    db = await create_database("bench_usage")
    conn = await raw_connection(db)
    n_runs = max(1, n_calls // 10)
    t0 = time.perf_counter()
    # Run r starts at a random instant of the last 30 days; its ~10 calls (g = r, r + n_runs,
    # ...) follow within minutes and all use one model, as an agent's run would.
    await conn.execute(
        "INSERT INTO runs (id, actor, name, status, created_at, updated_at) "
        "SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'alice', "
        "'job-' || (g % 20), 'succeeded', "
        "now() - interval '30 days' + interval '30 days' * ((g * 7919) % $1)::float8 / $1, now() "
        "FROM generate_series(0, $1 - 1) g",
        n_runs,
    )
    await conn.execute(
        "INSERT INTO llm_calls (id, run_id, provider, model, prompt_tokens, completion_tokens, "
        "total_tokens, cached_tokens, reasoning_tokens, cost_usd, cost_source, latency_ms, "
        "status, created_at) "
        "SELECT gen_random_uuid(), r.id, "
        "(" + PROVIDERS + ")[1 + (g % $2) % 5], (" + MODELS + ")[1 + (g % $2) % 5], "
        "1000 + g % 3000, 200 + g % 500, "
        "1200 + g % 3000 + g % 500, g % 1000, g % 200, (g % 1000) * 0.0000013, 'client', "
        "exp(5 + 3 * random()), CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END, "
        "least(r.created_at + (g / $2) * interval '20 seconds', now() - interval '1 second') "
        "FROM generate_series(0, $1 - 1) g "
        "JOIN runs r ON r.id = ('00000000-0000-4000-8000-' || lpad(to_hex(g % $2), 12, '0'))::uuid",
        n_calls,
        n_runs,
    )
    await conn.execute("VACUUM ANALYZE")
    hourly = await conn.fetchval("SELECT count(*) FROM llm_usage_hourly")
    run_rows = await conn.fetchval("SELECT count(*) FROM llm_usage_runs")
    say(
        f"usage: {n_calls:,} calls in {n_runs:,} runs loaded in {time.perf_counter() - t0:.0f} s; "
        f"roll-up rows: {hourly:,} hourly, {run_rows:,} run-hours"
    )
    # The hand-written baselines get the memory usage() gives itself.
    await conn.execute(f"SET work_mem = '{USAGE_WORK_MEM}'")
    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PostgresStore(get_session_factory(engine))
    # A window that is not hour-aligned: the edges are read from llm_calls.
    to = datetime.now(UTC)
    start = to - timedelta(days=30)
    rows: list[list[Any]] = []
    explain = ""
    for dims in (["model", "day"], ["model"], ["day"]):
        group_by = ",".join(dims)
        sql = usage_sql(dims)  # type: ignore[arg-type]
        hour0 = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        hour1 = to.replace(minute=0, second=0, microsecond=0)
        params: list[Any] = [start, to, hour0, hour1]

        def rollup_sql(sql: str) -> str:
            return (
                sql.replace(":actor", "$1")
                .replace(":from_", "$2")
                .replace(":to", "$3")
                .replace(":hour0", "$4")
                .replace(":hour1", "$5")
                .replace(":edge0", "$4")
                .replace(":edge1", "$5")
            )

        async def lib(i: int, dims: list[str] = dims) -> Any:
            return await store.usage("alice", group_by=dims, from_=start, to=to)  # type: ignore[arg-type]

        async def raw(i: int, dims: list[str] = dims) -> Any:
            keys = ", ".join(RAW_KEYS[d] for d in dims)
            sql = RAW_SQL.format(keys=keys, n=", ".join(str(i + 1) for i in range(len(dims))))
            return await conn.fetch(sql, "alice", start, to)

        async def hand_rollup(i: int, s: str = rollup_sql(sql), p: list[Any] = params) -> Any:
            return await conn.fetch(s, "alice", *p)

        p50, p95, result = await timed_passes(lib, 20)
        # The raw-table baseline takes seconds a query: three runs.
        raw_p50, _, raw_result = await timed_passes(raw, 3, repeats=1)
        hand_p50, _, _ = await timed_passes(hand_rollup, 20)
        report = result[-1]
        k = len(dims)
        raw_rows = raw_result[-1]
        assert len(report.rows) == len(raw_rows)
        assert sum(r.calls for r in report.rows) == sum(r[k] for r in raw_rows)
        assert sum(r.runs for r in report.rows) == sum(r[k + 1] for r in raw_rows)
        assert sum(r.cost_usd for r in report.rows) == sum(r[k + 8] for r in raw_rows)
        rows.append(
            [
                f"30 days by {group_by} ({len(report.rows)} rows)",
                p50,
                p95,
                raw_p50,
                p50 / raw_p50,
                hand_p50,
                p50 / hand_p50,
            ]
        )
        say(f"usage by {group_by}: p50 {p50:.1f} ms, raw SQL {raw_p50:.1f}, hand {hand_p50:.1f}")
        if dims == ["model", "day"]:
            plan = await conn.fetch(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + rollup_sql(sql), "alice", *params
            )
            explain += f"-- group_by={group_by}\n" + "\n".join(r[0] for r in plan) + "\n\n"
    await conn.close()
    await engine.dispose()
    await drop_database(db)
    return rows, explain


async def write_bench(n: int = 300) -> list[list[Any]]:
    """What the roll-up triggers and the price lookup cost a single call's write."""
    from chad_memory import LLMCallCreate, PostgresStore, RunCreate
    from chad_memory.database import create_engine, get_session_factory

    db = await create_database("bench_usage_writes")
    conn = await raw_connection(db)
    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PostgresStore(get_session_factory(engine))
    run = await store.save_run(RunCreate(actor="alice"))
    insert = (
        "INSERT INTO llm_calls (id, run_id, actor, provider, model, prompt_tokens, "
        "completion_tokens, total_tokens, cost_usd, latency_ms) "
        "VALUES (gen_random_uuid(), $1, 'alice', 'openai', 'gpt-4o', 1000, 200, 1200, "
        "0.0045, 800)"
    )

    async def raw(i: int) -> Any:
        return await conn.execute(insert, run.id)

    async def priced(i: int) -> Any:
        call = LLMCallCreate(
            run_id=run.id,
            provider="openai",
            model="gpt-4o",
            prompt_tokens=1000,
            cached_tokens=400,
            completion_tokens=200,
            latency_ms=800,
        )
        return await store.save_llm_call(call)

    async def sent(i: int) -> Any:
        call = LLMCallCreate(
            run_id=run.id,
            provider="openai",
            model="gpt-4o",
            prompt_tokens=1000,
            completion_tokens=200,
            cost_usd="0.0045",
            latency_ms=800,
        )
        return await store.save_llm_call(call)

    rows: list[list[Any]] = []
    await conn.execute("ALTER TABLE llm_calls DISABLE TRIGGER USER")
    bare, _, _ = await timed_passes(raw, n)
    await conn.execute("ALTER TABLE llm_calls ENABLE TRIGGER USER")
    with_triggers, _, _ = await timed_passes(raw, n)
    client_cost, _, _ = await timed_passes(sent, n)
    table_cost, _, _ = await timed_passes(priced, n)
    rows.append(["raw INSERT, triggers disabled", bare, 1.0])
    rows.append(["raw INSERT, roll-up triggers", with_triggers, with_triggers / bare])
    rows.append(["save_llm_call, cost sent by the client", client_cost, client_cost / bare])
    rows.append(["save_llm_call, cost from the price table", table_cost, table_cost / bare])
    say(f"writes: bare {bare:.2f} ms, triggers {with_triggers:.2f}, library {table_cost:.2f}")
    await conn.close()
    await engine.dispose()
    await drop_database(db)
    return rows


async def filter_bench(n_runs: int) -> tuple[list[list[Any]], str]:
    from chad_memory import PostgresStore, RunFilter
    from chad_memory.database import create_engine, get_session_factory

    db = await create_database("bench_filters")
    conn = await raw_connection(db)
    t0 = time.perf_counter()
    await conn.execute(
        "INSERT INTO runs (id, actor, name, status, metadata, tags, created_at, updated_at) "
        "SELECT gen_random_uuid(), 'alice', 'run ' || g, 'succeeded', "
        "jsonb_build_object('team', 't' || (g % 1000), 'customer', 'c' || (g % 10000)), "
        "ARRAY['tag' || (g % 7)], now() - g * interval '1 second', now() "
        "FROM generate_series(1, $1) g",
        n_runs,
    )
    await conn.execute("VACUUM ANALYZE runs")
    say(f"filters: {n_runs:,} runs loaded in {time.perf_counter() - t0:.0f} s")
    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PostgresStore(get_session_factory(engine))
    base = RunFilter(actor="alice")
    rows: list[list[Any]] = []
    unfiltered, _, _ = await timed_passes(lambda i: store.list_run_summaries(base, limit=50), 30)
    rows.append(["unfiltered", n_runs, unfiltered, 1.0])
    explain = ""
    for label, meta in (
        ('metadata {"team": "t7"} (0.1%)', {"team": "t7"}),
        ('metadata {"customer": "c42"} (0.01%)', {"customer": "c42"}),
    ):
        f = RunFilter(actor="alice", metadata=meta)

        async def filtered(i: int, f: RunFilter = f) -> Any:
            return await store.list_run_summaries(f, limit=50)

        p50, _, result = await timed_passes(filtered, 30)
        matches = await store.count_runs(f)
        assert len(result[-1].items) == min(50, matches)
        rows.append([label, matches, p50, p50 / unfiltered])
        say(f"filter {label}: p50 {p50:.2f} ms vs unfiltered {unfiltered:.2f}")
        plan = await conn.fetch(
            "EXPLAIN (ANALYZE, COSTS OFF) SELECT id FROM runs WHERE actor = $1 "
            "AND metadata @> $2::jsonb ORDER BY created_at DESC, id DESC LIMIT 51",
            "alice",
            json.dumps(meta),
        )
        explain += f"-- {label}\n" + "\n".join(r[0] for r in plan) + "\n\n"
    await conn.close()
    await engine.dispose()
    await drop_database(db)
    return rows, explain


async def main(n_calls: int, n_runs: int) -> None:
    say(f"load: {load_line()}")
    usage_rows, usage_explain = await usage_bench(n_calls)
    print(f"### Usage analytics, {n_calls:,} LLM calls of one actor over 30 days")
    print()
    print(
        table(
            [
                "PostgresStore.usage",
                "p50 ms",
                "p95 ms",
                "raw-table SQL p50 ms",
                "ours / raw",
                "roll-up SQL p50 ms",
                "ours / roll-up SQL",
            ],
            usage_rows,
        )
    )
    print()
    print("EXPLAIN ANALYZE (the roll-up queries usage() sends):")
    print()
    print("```")
    print(usage_explain.strip())
    print("```")
    print()
    write_rows = await write_bench()
    print("### Writing one LLM call (p50 ms, sequential, autocommit)")
    print()
    print(table(["what", "p50 ms", "vs bare INSERT"], write_rows))
    print()
    if n_runs == 0:
        return
    filter_rows, filter_explain = await filter_bench(n_runs)
    print(f"### First page (50) of run summaries at {n_runs:,} runs, metadata filters")
    print()
    print(table(["filter", "matches", "p50 ms", "vs unfiltered"], filter_rows))
    print()
    print("```")
    print(filter_explain.strip())
    print("```")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=int(os.environ.get("CALLS", "1000000")))
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "1000000")))
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.runs))
