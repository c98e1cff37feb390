"""Full-text search: first-page latency at scale, and what the text indexes cost writes.

Usage: python -m bench.search [--steps 200000] [--queries 20] [--write-steps 20000]
                              [--spans 4000]

Search. `--steps` steps of one actor (100 per run), each with real text: a docstring
of the stdlib or an installed package as its input and another as its output
(bench/realtext.py's corpus), plus an identifier `order-<n>` in the output. Loaded with
the text index dropped, then indexed (CREATE INDEX), VACUUM ANALYZE, as a restore would.
Queries: `--queries` single words taken from random docstrings (so their frequencies
vary from a handful of rows to many thousands), as many two-word phrases (adjacent words
of a docstring, quoted), and identifiers. Each runs `SearchStore.search(kind=step)`,
first page of 20 with snippets, beside the hand-written SQL that does the same work
(the same match, order, limit and ts_headline) through asyncpg: the ratio is the
library's overhead. p50 / p95 over all queries, median of REPEATS passes.

Writes. Two fresh databases in one run, one with the text indexes of revision 015 and
one with them dropped: `PostgresStore.save_steps` rows/s (bench/ingest.py's ~500-byte
payloads, batches of 500) and OTLP spans/s through the real exporter into
`chad-memory serve` (bench/otlp.py), alternating the two databases, two rounds each.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import time
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
from bench.otlp import export_rate, make_spans, save_steps_rate
from bench.realtext import docstrings

SEARCH_INDEXES = (
    "ix_runs_search",
    "ix_steps_search",
    "ix_llm_calls_search",
    "ix_threads_search",
    "ix_messages_search",
    "ix_embeddings_search",
)
STEP_DOCUMENT = "chad_step_document(s.name, s.input, s.output, s.error)"
STEP_INDEX = (
    "CREATE INDEX ix_steps_search ON steps USING gin "
    f"(chad_search_vector({STEP_DOCUMENT.replace('s.', '')}))"
)
# The hand-written statement: the same match, order, page and snippets as the library's.
HAND_SQL = f"""
SELECT p.id, p.run_id, p.created_at,
       ts_headline('english', {STEP_DOCUMENT}, to_tsquery('english', $2), $3)
FROM (SELECT s.id, s.run_id, s.created_at
      FROM steps s JOIN runs r ON r.id = s.run_id
      WHERE r.actor = $1
        AND chad_search_vector({STEP_DOCUMENT}) @@ to_tsquery('english', $2)
      ORDER BY s.created_at DESC, s.id DESC LIMIT 21) p
JOIN steps s ON s.id = p.id
ORDER BY p.created_at DESC, p.id DESC
"""


async def load(db: str, n: int, docs: list[str]) -> float:
    """Seconds to load n steps and build their text index."""
    conn = await raw_connection(db)
    try:
        await conn.execute("DROP INDEX ix_steps_search")
        await conn.execute("CREATE TEMP TABLE docs (i int PRIMARY KEY, t text)")
        await conn.copy_records_to_table("docs", records=list(enumerate(docs)))
        runs = (n + 99) // 100
        await conn.execute(
            "CREATE TEMP TABLE run_ids AS SELECT k, gen_random_uuid() AS id "
            "FROM generate_series(0, $1 - 1) k",
            runs,
        )
        await conn.execute(
            "INSERT INTO runs (id, actor, name, status, created_at) "
            "SELECT id, 'alice', 'agent ' || k, 'succeeded', now() - interval '1 year' "
            "+ k * interval '100 seconds' FROM run_ids"
        )
        t0 = time.perf_counter()
        nd = len(docs)
        for start in range(0, n, 100_000):
            await conn.execute(
                """
                INSERT INTO steps (id, run_id, step_index, name, type, input, output, created_at)
                SELECT gen_random_uuid(), r.id, g % 100, 'tool', 'tool',
                       jsonb_build_object('query', d1.t),
                       jsonb_build_object('text', d2.t, 'ref', 'order-' || g),
                       now() - interval '1 year' + g * interval '1 second'
                FROM generate_series($1::int, $2::int - 1) g
                JOIN docs d1 ON d1.i = g % $3
                JOIN docs d2 ON d2.i = (g * 7 + 3) % $3
                JOIN run_ids r ON r.k = g / 100
                """,
                start,
                min(n, start + 100_000),
                nd,
            )
            say(f"loaded {min(n, start + 100_000):,} steps")
        t1 = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute(STEP_INDEX)
        t2 = time.perf_counter()
        await conn.execute("VACUUM ANALYZE runs")
        await conn.execute("VACUUM ANALYZE steps")
        size = await conn.fetchval("SELECT pg_relation_size('ix_steps_search')")
        heap = await conn.fetchval("SELECT pg_table_size('steps')")
        say(
            f"insert {t1 - t0:.0f} s, index build {t2 - t1:.0f} s, index {size / 2**20:.0f} MB "
            f"beside a {heap / 2**20:.0f} MB table (TOAST included)"
        )
        return t2 - t1
    finally:
        await conn.close()


def queries(docs: list[str], count: int, seed: int = 11) -> dict[str, list[str]]:
    rng = random.Random(seed)
    words: list[str] = []
    phrases: list[str] = []
    while len(words) < count or len(phrases) < count:
        tokens = re.findall(r"[A-Za-z]{4,}", rng.choice(docs))
        if len(tokens) < 3:
            continue
        if len(words) < count:
            words.append(rng.choice(tokens).lower())
        if len(phrases) < count:
            i = rng.randrange(len(tokens) - 1)
            phrases.append(f'"{tokens[i]} {tokens[i + 1]}"')
    identifiers = [f"order-{rng.randrange(10_000)}" for _ in range(count)]
    return {"word": words, "phrase": phrases, "identifier": identifiers}


async def latency(db: str, sets: dict[str, list[str]]) -> list[list[Any]]:
    from chad_memory import SearchFilter, SearchStore
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.stores.search_kinds import HEADLINE_OPTIONS
    from chad_memory.text_search import tsquery_text

    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = SearchStore(get_session_factory(engine))
    only_steps = SearchFilter(kinds=["step"])
    conn = await raw_connection(db)
    await conn.execute("SET plan_cache_mode = force_custom_plan")
    rows = []
    try:
        for kind, qs in sets.items():
            texts = [tsquery_text(q) for q in qs]

            async def library(i: int, qs: list[str] = qs) -> int:
                page = await store.search(qs[i], actor="alice", filters=only_steps)
                return len(page.items)

            async def everything(i: int, qs: list[str] = qs) -> int:
                return len((await store.search(qs[i], actor="alice")).items)

            async def hand(i: int, texts: list[str] = texts) -> int:
                return len(await conn.fetch(HAND_SQL, "alice", texts[i], HEADLINE_OPTIONS))

            await hand(0)  # warm the cache for both
            h50, h95, counts = await timed_passes(hand, len(qs))
            l50, l95, lib_counts = await timed_passes(library, len(qs))
            _, a95, _ = await timed_passes(everything, len(qs))
            assert [min(c, 20) for c in counts] == lib_counts, (kind, counts, lib_counts)
            hits = statistics.median(counts)
            rows.append([kind, len(qs), hits, h50, h95, l50, l95, l95 / h95, a95])
    finally:
        await conn.close()
        await engine.dispose()
    return rows


async def writes(n_steps: int, n_spans: int) -> list[list[Any]]:
    spans = make_spans(n_spans, 16)
    with_index = await create_database("bench_search_on")
    without = await create_database("bench_search_off")
    conn = await raw_connection(without)
    for name in SEARCH_INDEXES:
        await conn.execute(f"DROP INDEX {name}")
    await conn.close()
    rates: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(2):
            for label, db in (("without text index", without), ("with text index", with_index)):
                rate = await save_steps_rate(db, n_steps, 500)
                rates.setdefault(("save_steps rows/s", label), []).append(rate)
                say(f"save_steps {label}: {rate:,.0f} rows/s")
        for _ in range(2):
            for label, db in (("without text index", without), ("with text index", with_index)):
                rate, _stored = await export_rate(db, spans, 512)
                rates.setdefault(("OTLP spans/s", label), []).append(rate)
                say(f"OTLP {label}: {rate:,.0f} spans/s")
    finally:
        await drop_database(with_index)
        await drop_database(without)
    out = []
    for what in ("save_steps rows/s", "OTLP spans/s"):
        before = statistics.median(rates[(what, "without text index")])
        after = statistics.median(rates[(what, "with text index")])
        out.append([what, before, after, after / before])
    return out


async def main(n_steps: int, n_queries: int, write_steps: int, spans: int) -> None:
    docs = [d for d in docstrings(50_000) if "\x00" not in d]
    say(f"{len(docs):,} docstrings; load: {load_line()}")
    db = await create_database("bench_search")
    try:
        await load(db, n_steps, docs)
        sets = queries(docs, n_queries)
        rows = await latency(db, sets)
    finally:
        await drop_database(db)
    print(f"\nSearch, {n_steps:,} steps of real text, first page of 20 with snippets (ms)")
    print(load_line())
    print(
        table(
            [
                "query",
                "n",
                "median hits",
                "hand SQL p50",
                "hand SQL p95",
                "library p50",
                "library p95",
                "p95 ratio",
                "all kinds p95",
            ],
            rows,
        )
    )
    write_rows = await writes(write_steps, spans)
    print("\nWrites with and without the text indexes (median of 2 alternating rounds)")
    print(load_line())
    print(table(["", "without", "with", "ratio"], write_rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--write-steps", type=int, default=20_000)
    parser.add_argument("--spans", type=int, default=4000)
    args = parser.parse_args()
    asyncio.run(main(args.steps, args.queries, args.write_steps, args.spans))
