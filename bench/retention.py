"""Retention at scale: prune half of RUNS runs with STEPS_PER_RUN steps each.

Usage: python -m bench.retention [--runs 1000000] [--steps-per-run 10] [--batch-size 500]

Prints, side by side from one run:
- the prune itself (the real `chad-memory prune` command in a child process): rows
  deleted, seconds, and the child's peak resident memory sampled every 0.2 s, beside
  its memory at the first batch (flat means constant memory);
- a concurrent writer (PostgresStore: a run and 10 steps per iteration) before the prune
  and during it: p50/p95 ms (the goal is within 2x);
- table sizes before, after the prune's VACUUM, and after writing the deleted volume
  again (space reused, not grown), and the same VACUUM FULL would give back;
- an integrity check: every run newer than the cutoff and all its steps are still there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from datetime import datetime

import asyncpg
import psutil

from bench.common import create_database, drop_database, load_line, say, sqlalchemy_url, table
from chad_memory.database import create_engine, get_session_factory
from chad_memory.schemas import RunCreate, StepCreate
from chad_memory.stores import PostgresStore

TABLES = ("runs", "steps", "llm_calls", "artifacts", "embeddings")


async def generate(db: str, runs: int, steps_per_run: int, batch: str = "first") -> None:
    """Runs spread evenly over the last 180 days (half older than 90), steps with
    ~250-byte JSON inputs, one LLM call per run; INSERT ... SELECT in chunks."""
    conn = await asyncpg.connect(db)
    try:
        chunk = 100_000
        for start in range(0, runs, chunk):
            n = min(chunk, runs - start)
            await conn.execute(
                """
                INSERT INTO runs (id, actor, name, status, created_at, updated_at, metadata)
                SELECT gen_random_uuid(), 'actor-' || (g % 10), $4, 'succeeded',
                       now() - make_interval(secs => (180 * 86400.0) * g / $2),
                       now(), jsonb_build_object('i', g)
                FROM generate_series($1::bigint, $1 + $3 - 1) AS g
                """,
                start,
                runs,
                n,
                batch,
            )
            say(f"runs: {start + n:,} of {runs:,}")
        await conn.execute(
            """
            INSERT INTO steps (id, run_id, step_index, name, type, status, input)
            SELECT gen_random_uuid(), r.id, s, 'tool', 'tool', 'succeeded',
                   jsonb_build_object('tool', 'search', 'query', repeat('what ships when ', 12),
                                      'args', jsonb_build_object('limit', 10, 'i', s))
            FROM runs r CROSS JOIN generate_series(0, $1 - 1) AS s
            WHERE r.name = $2
            """,
            steps_per_run,
            batch,
        )
        say("steps written")
        await conn.execute(
            """
            INSERT INTO llm_calls (id, run_id, provider, model, prompt_tokens,
                                   completion_tokens, total_tokens, cost_usd, latency_ms)
            SELECT gen_random_uuid(), id, 'openai', 'gpt-4o', 100, 20, 120, 0.0012, 800
            FROM runs WHERE name = $1
            """,
            batch,
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def kept(conn: asyncpg.Connection, since: datetime) -> str:
    row = await conn.fetchrow(
        "SELECT count(DISTINCT r.id) AS runs, count(s.id) AS steps, "
        "coalesce(sum(s.step_index), 0) AS checksum "
        "FROM runs r LEFT JOIN steps s ON s.run_id = r.id "
        "WHERE r.created_at >= $1 AND r.actor <> 'live'",
        since,
    )
    return f"{row['runs']:,} / {row['steps']:,} / {row['checksum']:,}"


async def sizes(db: str) -> dict[str, int]:
    conn = await asyncpg.connect(db)
    try:
        return {
            t: int(await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t))
            for t in TABLES
        }
    finally:
        await conn.close()


async def writer(store: PostgresStore, stop: asyncio.Event, out: list[float]) -> None:
    """A run and ten steps per iteration, as an agent would write them."""
    while not stop.is_set():
        t0 = time.perf_counter()
        run = await store.save_run(RunCreate(actor="live", name="agent"))
        await store.save_steps(
            [
                StepCreate(run_id=run.id, step_index=i, name="tool", input={"i": i})
                for i in range(10)
            ]
        )
        out.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.01)


async def prune_with_memory(db: str, batch_size: int) -> tuple[float, float, float, str]:
    """Run `chad-memory prune --older-than 90d`; (seconds, first-batch MB, peak MB, output)."""
    env = {**os.environ, "DATABASE_URL": sqlalchemy_url(db)}
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chad_memory.cli",
        "prune",
        "--older-than",
        "90d",
        "--batch-size",
        str(batch_size),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    ps = psutil.Process(proc.pid)
    samples: list[float] = []
    first_batch_mb: float | None = None
    stderr_lines: list[str] = []

    async def read_err() -> None:
        nonlocal first_batch_mb
        assert proc.stderr is not None
        async for line in proc.stderr:
            text = line.decode()
            stderr_lines.append(text)
            if first_batch_mb is None and "batch 1:" in text and samples:
                first_batch_mb = samples[-1]

    reader = asyncio.create_task(read_err())
    while proc.returncode is None:
        try:
            samples.append(ps.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.2)
    assert proc.stdout is not None
    out = (await proc.stdout.read()).decode()
    await reader
    if proc.returncode != 0:
        raise RuntimeError("prune failed: " + "".join(stderr_lines[-20:]))
    seconds = time.perf_counter() - started
    return seconds, first_batch_mb or samples[0], max(samples), out.strip()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "1000000")))
    parser.add_argument("--steps-per-run", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()

    db = await create_database("bench_retention")
    engine = create_engine(sqlalchemy_url(db), pool_size=4)
    store = PostgresStore(get_session_factory(engine))
    try:
        say(f"generating {args.runs:,} runs x {args.steps_per_run} steps ...")
        t0 = time.perf_counter()
        await generate(db, args.runs, args.steps_per_run)
        say(f"generated in {time.perf_counter() - t0:.0f}s")
        # Integrity: runs a day clear of the cutoff, and their steps, before and after.
        conn = await asyncpg.connect(db)
        safe: datetime = await conn.fetchval("SELECT now() - interval '89 days'")
        kept_before = await kept(conn, safe)
        await conn.close()
        before = await sizes(db)

        baseline: list[float] = []
        stop = asyncio.Event()
        task = asyncio.create_task(writer(store, stop, baseline))
        await asyncio.sleep(10)
        stop.set()
        await task

        during: list[float] = []
        stop = asyncio.Event()
        task = asyncio.create_task(writer(store, stop, during))
        seconds, first_mb, peak_mb, output = await prune_with_memory(db, args.batch_size)
        stop.set()
        await task
        after_vacuum = await sizes(db)

        conn = await asyncpg.connect(db)
        kept_after = await kept(conn, safe)
        too_old = await conn.fetchval(
            "SELECT count(*) FROM runs WHERE created_at < now() - interval '90 days'"
        )
        await conn.close()
        # Write the deleted volume again: VACUUM made the pages reusable, so the tables
        # should not grow by it.
        await generate(db, args.runs // 2, args.steps_per_run, batch="refill")
        after_refill = await sizes(db)

        def mb(values: dict[str, int]) -> float:
            return sum(values.values()) / 2**20

        print(f"## Retention: {args.runs:,} runs x {args.steps_per_run} steps, prune half\n")
        print(f"Load during the run: `{load_line()}`\n")
        print(f"`chad-memory prune --older-than 90d --batch-size {args.batch_size}`: {output}\n")
        print(
            table(
                ["measure", "value"],
                [
                    ["prune wall time (s)", seconds],
                    ["prune RSS at first batch (MB)", first_mb],
                    ["prune peak RSS (MB)", peak_mb],
                    [
                        "writer p50 before / during (ms)",
                        f"{statistics.median(baseline):.1f} / {statistics.median(during):.1f}",
                    ],
                    [
                        "writer p95 before / during (ms)",
                        f"{_p95(baseline):.1f} / {_p95(during):.1f}",
                    ],
                    ["writer iterations before / during", f"{len(baseline)} / {len(during)}"],
                    ["tables before (MB)", mb(before)],
                    ["tables after prune + VACUUM (MB)", mb(after_vacuum)],
                    ["tables after writing half again (MB)", mb(after_refill)],
                    ["newer runs, their steps, step-index sum: before", kept_before],
                    ["the same after the prune", kept_after],
                    ["runs older than 90 days left", too_old],
                ],
            )
        )
    finally:
        await engine.dispose()
        await drop_database(db)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))] if ordered else float("nan")


if __name__ == "__main__":
    asyncio.run(main())
