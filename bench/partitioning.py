"""Time partitioning for steps, exercised: what retention and reads cost with and without.

Usage: python -m bench.partitioning [--steps 2000000] [--months 6]

Two copies of the same steps, one plain table (today's shape plus the run's created_at)
and one partitioned by month on `run_created_at` (declarative RANGE partitioning). The
partition key has to be in every unique constraint, so the primary key becomes
(id, run_created_at) and the per-run step index (run_id, step_index, run_created_at):
the same rule as today, because every step of a run carries its run's created_at.

Measured side by side: dropping the oldest month (DELETE + VACUUM on the plain table vs
DETACH PARTITION CONCURRENTLY + DROP TABLE), the space each returns to the operating
system, and reading one run's steps (by run_id alone, which visits every partition's
index, and with the run's created_at too, which prunes to one partition).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.common import (
    create_database,
    drop_database,
    load_line,
    percentile,
    say,
    table,
)

PLAIN = """
CREATE TABLE steps_plain (
    id uuid PRIMARY KEY,
    run_id uuid NOT NULL,
    run_created_at timestamptz NOT NULL,
    step_index integer NOT NULL,
    name text,
    input jsonb,
    UNIQUE (run_id, step_index)
)
"""
PARTITIONED = """
CREATE TABLE steps_part (
    id uuid NOT NULL,
    run_id uuid NOT NULL,
    run_created_at timestamptz NOT NULL,
    step_index integer NOT NULL,
    name text,
    input jsonb,
    PRIMARY KEY (id, run_created_at),
    UNIQUE (run_id, step_index, run_created_at)
) PARTITION BY RANGE (run_created_at)
"""


def month_starts(months: int) -> list[datetime]:
    now = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    starts = [now]
    for _ in range(months):
        starts.append((starts[-1] - timedelta(days=1)).replace(day=1))
    return sorted(starts)


async def setup(conn: asyncpg.Connection, steps: int, months: int) -> list[datetime]:
    starts = month_starts(months)
    await conn.execute(PLAIN)
    await conn.execute(PARTITIONED)
    for lo, hi in zip(starts, [*starts[1:], starts[-1] + timedelta(days=32)], strict=True):
        name = f"steps_part_{lo:%Y_%m}"
        await conn.execute(
            f"CREATE TABLE {name} PARTITION OF steps_part "
            f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
        )
    span = (datetime.now(UTC) - starts[0]).total_seconds()
    # Ten steps per run; runs spread evenly over the months.
    await conn.execute(
        """
        INSERT INTO steps_plain
        SELECT gen_random_uuid(), r.run_id, r.at, s, 'tool',
               jsonb_build_object('query', repeat('what ships when ', 12), 'i', s)
        FROM (SELECT gen_random_uuid() AS run_id,
                     $2::timestamptz + make_interval(secs => $3::float8 * g / $1) AS at
              FROM generate_series(0, $1 - 1) AS g) r
        CROSS JOIN generate_series(0, 9) AS s
        """,
        steps // 10,
        starts[0],
        span,
    )
    await conn.execute("INSERT INTO steps_part SELECT * FROM steps_plain")
    await conn.execute("VACUUM ANALYZE steps_plain")
    await conn.execute("VACUUM ANALYZE steps_part")
    return starts


async def size(conn: asyncpg.Connection, tables: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.relname LIKE $1 AND c.relkind IN ('r', 'p')",
            tables,
        )
    )


async def read_latency(conn: asyncpg.Connection, sql: str, runs: list[asyncpg.Record]) -> float:
    times = []
    for r in runs:
        t0 = time.perf_counter()
        await conn.fetch(sql, *r)
        times.append((time.perf_counter() - t0) * 1000)
    return percentile(times, 0.5)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=int(os.environ.get("STEPS", "2000000")))
    parser.add_argument("--months", type=int, default=6)
    args = parser.parse_args()
    db = await create_database("bench_partitions", migrate=False)
    conn = await asyncpg.connect(db)
    try:
        say(f"writing {args.steps:,} steps twice ...")
        starts = await setup(conn, args.steps, args.months)
        oldest, cut = starts[0], starts[1]
        sample = await conn.fetch(
            "SELECT run_id, run_created_at FROM steps_plain TABLESAMPLE SYSTEM (1) LIMIT 200"
        )
        by_run = [(r["run_id"],) for r in sample]
        by_run_and_time = [(r["run_id"], r["run_created_at"]) for r in sample]
        reads = [
            [
                "plain, by run_id",
                await read_latency(
                    conn, "SELECT * FROM steps_plain WHERE run_id = $1 ORDER BY step_index", by_run
                ),
            ],
            [
                "partitioned, by run_id",
                await read_latency(
                    conn, "SELECT * FROM steps_part WHERE run_id = $1 ORDER BY step_index", by_run
                ),
            ],
            [
                "partitioned, by run_id + run_created_at",
                await read_latency(
                    conn,
                    "SELECT * FROM steps_part WHERE run_id = $1 AND run_created_at = $2 "
                    "ORDER BY step_index",
                    by_run_and_time,
                ),
            ],
        ]
        plain_before = await size(conn, "steps_plain%")
        part_before = await size(conn, "steps_part%")
        doomed = await conn.fetchval(
            "SELECT count(*) FROM steps_plain WHERE run_created_at < $1", cut
        )

        t0 = time.perf_counter()
        await conn.execute("DELETE FROM steps_plain WHERE run_created_at < $1", cut)
        delete_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        await conn.execute("VACUUM steps_plain")
        vacuum_s = time.perf_counter() - t0
        plain_after = await size(conn, "steps_plain%")

        name = f"steps_part_{oldest:%Y_%m}"
        t0 = time.perf_counter()
        await conn.execute(f"ALTER TABLE steps_part DETACH PARTITION {name} CONCURRENTLY")
        await conn.execute(f"DROP TABLE {name}")
        drop_s = time.perf_counter() - t0
        part_after = await size(conn, "steps_part%")

        mb = 2**20
        print(
            f"## Partitioning steps by month: {args.steps:,} steps over {args.months + 1} "
            f"months, drop the oldest ({doomed:,} steps)\n"
        )
        print(f"Load during the run: `{load_line()}`\n")
        print(
            table(
                ["retention of one month", "seconds", "size before (MB)", "size after (MB)"],
                [
                    ["plain: DELETE", delete_s, plain_before / mb, "-"],
                    ["plain: + VACUUM", delete_s + vacuum_s, plain_before / mb, plain_after / mb],
                    [
                        "partitioned: DETACH CONCURRENTLY + DROP",
                        drop_s,
                        part_before / mb,
                        part_after / mb,
                    ],
                ],
            )
        )
        print()
        print(table(["one run's 10 steps (200 runs)", "p50 ms"], reads))
    finally:
        await conn.close()
        await drop_database(db)


if __name__ == "__main__":
    asyncio.run(main())
