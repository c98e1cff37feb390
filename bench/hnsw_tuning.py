"""HNSW build and search settings against the goal recall@10 >= 0.99 at p50 <= 3 ms.

Usage: python -m bench.hnsw_tuning [--size N] [--queries Q] [--efs 40,64,...]
       [--builds vector:16:64,halfvec:16:64,halfvec:24:128]

The same clustered vectors as bench/vectors.py (same seed), loaded with COPY, then for each
build (`storage:m:ef_construction`: a plain `vector` index, or a `halfvec` expression
index whose candidates are re-ranked by the exact `vector` distance) an ef_search sweep
with plain asyncpg: one transaction per search with its settings (iterative scan
relaxed_order), as PgVectorStore sends them; for `vector` builds also PgVectorStore.search
itself at the same ef_search, timed query by query in turn with the raw search. The
smallest ef_search reaching 0.99 and its p50 are the figure to compare with the goal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from typing import Any

from bench.common import (
    create_database,
    drop_database,
    load_line,
    percentile,
    raw_connection,
    say,
    sqlalchemy_url,
    table,
    timed_passes,
)
from bench.datasets import clustered_vectors, exact_top_k, recall_at_k

K = 10
GOAL_RECALL = 0.99
EFS = (40, 64, 100, 150, 200, 300, 400)
BUILDS = "vector:16:64,halfvec:16:64,halfvec:24:128"


def _search_sql(halfvec: bool, dim: int, candidates: int) -> str:
    if not halfvec:
        return f"SELECT content FROM embeddings ORDER BY embedding <=> $1 LIMIT {K}"
    # Candidates from the half-precision graph, re-ranked by the full-precision distance.
    return (
        "SELECT content FROM (SELECT content, embedding FROM embeddings "
        f"ORDER BY embedding::halfvec({dim}) <=> $1::vector::halfvec({dim}) "
        f"LIMIT {candidates}) c ORDER BY embedding <=> $1 LIMIT {K}"
    )


async def _build(conn: Any, halfvec: bool, dim: int, m: int, ef_c: int) -> float:
    for row in await conn.fetch(
        "SELECT indexrelid::regclass::text AS name FROM pg_index i JOIN pg_class c "
        "ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
        "WHERE indrelid = 'embeddings'::regclass AND am.amname IN ('ivfflat', 'hnsw')"
    ):
        await conn.execute(f"DROP INDEX {row['name']}")
    column = (
        f"(embedding::halfvec({dim})) halfvec_cosine_ops"
        if halfvec
        else "embedding vector_cosine_ops"
    )
    t0 = time.perf_counter()
    await conn.execute("SET maintenance_work_mem = '1GB'")
    await conn.execute(
        f"CREATE INDEX ix_tuning ON embeddings USING hnsw ({column}) "
        f"WITH (m = {m}, ef_construction = {ef_c})"
    )
    await conn.execute("VACUUM (ANALYZE) embeddings")
    return time.perf_counter() - t0


async def _interleaved(
    ours: Any, raw: Any, count: int, repeats: int = 3
) -> tuple[float, float, list[Any], float, float, list[Any]]:
    """p50/p95 (median over passes) and last answers of two searches timed in turn."""
    times: dict[str, list[list[float]]] = {"ours": [], "raw": []}
    found: dict[str, list[Any]] = {"ours": [], "raw": []}
    for _ in range(repeats):
        for name in times:
            times[name].append([])
            found[name] = []
        for i in range(count):
            for name, fn in (("ours", ours), ("raw", raw)):
                t0 = time.perf_counter()
                found[name].append(await fn(i))
                times[name][-1].append((time.perf_counter() - t0) * 1000)

    def stats(name: str) -> tuple[float, float]:
        p50 = statistics.median(percentile(t, 0.5) for t in times[name])
        return p50, statistics.median(percentile(t, 0.95) for t in times[name])

    (o50, o95), (r50, r95) = stats("ours"), stats("raw")
    return o50, o95, found["ours"], r50, r95, found["raw"]


async def main(
    size: int, n_queries: int, builds: list[tuple[bool, int, int]], efs: list[int]
) -> None:
    from chad_memory import PgVectorStore
    from chad_memory.database import create_engine, get_session_factory

    dim = int(os.environ.get("EMBEDDING_DIM", "1536"))
    say(f"load: {load_line()}")
    data = clustered_vectors(size, dim, queries=n_queries, seed=42)
    truth = exact_top_k(data.base, data.queries, K)
    db = await create_database("bench_hnsw")
    rows: list[list[Any]] = []
    best: list[list[Any]] = []
    try:
        conn = await raw_connection(db)
        records = [
            (uuid.uuid4(), "alice", "default", str(i), data.base[i], "{}") for i in range(size)
        ]
        for start in range(0, size, 10_000):
            await conn.copy_records_to_table(
                "embeddings",
                records=records[start : start + 10_000],
                columns=["id", "actor", "namespace", "content", "embedding", "metadata"],
            )
        del records
        engine = create_engine(sqlalchemy_url(db), pool_size=2)
        qlists = [q.tolist() for q in data.queries]
        for halfvec, m, ef_c in builds:
            label = f"{'halfvec + re-rank' if halfvec else 'vector'} m={m} ef_c={ef_c}"
            build_s = await _build(conn, halfvec, dim, m, ef_c)
            say(f"{label}: built in {build_s:.0f} s")
            reached: list[Any] | None = None
            for ef in efs:
                store = PgVectorStore(
                    get_session_factory(engine), ef_search=ef, maintain_in_background=False
                )

                async def ours(i: int, store: PgVectorStore = store) -> list[int]:
                    return [int(h.content or -1) for h in await store.search(qlists[i], k=K)]

                async def one(i: int, ef: int = ef, halfvec: bool = halfvec) -> list[int]:
                    async with conn.transaction():
                        await conn.execute(
                            f"SELECT set_config('hnsw.ef_search', '{ef}', true), "
                            "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
                        )
                        found = await conn.fetch(
                            _search_sql(halfvec, dim, max(ef, 4 * K)), data.queries[i]
                        )
                    return [int(r["content"]) for r in found]

                if halfvec:  # the library has no halfvec search: raw only
                    p50, p95, found = await timed_passes(one, n_queries)
                    lib: list[Any] = ["-", "-", "-"]
                else:
                    o50, o95, o_found, p50, p95, found = await _interleaved(ours, one, n_queries)
                    lib = [recall_at_k(o_found, truth), o50, o95]
                recall = recall_at_k(found, truth)
                say(f"{label} ef_search={ef}: recall {recall:.3f} p50 {p50:.2f} ms; ours {lib}")
                rows.append([label, build_s, ef, recall, p50, p95, *lib])
                if reached is None and recall >= GOAL_RECALL:
                    reached = [label, build_s, ef, recall, p50, lib[1]]
            best.append(reached or [label, build_s, "not reached", "-", "-", "-"])
        await engine.dispose()
        await conn.close()
    finally:
        await drop_database(db)
    print(f"### HNSW settings, {size:,} x {dim} clustered vectors, {n_queries} queries, k={K}")
    print()
    print(
        table(
            [
                "build",
                "build s",
                "hnsw.ef_search",
                "raw recall@10",
                "raw p50 ms",
                "raw p95 ms",
                "ours recall@10",
                "ours p50 ms",
                "ours p95 ms",
            ],
            rows,
        )
    )
    print()
    print(f"Smallest ef_search reaching recall {GOAL_RECALL} (goal: p50 <= 3 ms):")
    print()
    print(
        table(
            ["build", "build s", "hnsw.ef_search", "recall@10", "raw p50 ms", "ours p50 ms"],
            best,
        )
    )
    print()
    print(f"Load when the script finished: `{load_line()}`")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=int(os.environ.get("SIZE", "100000")))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--builds", default=BUILDS, help="storage:m:ef_construction,...")
    parser.add_argument("--efs", default=",".join(map(str, EFS)), help="ef_search values")
    args = parser.parse_args()
    chosen = [
        (storage == "halfvec", int(m), int(ef_c))
        for storage, m, ef_c in (b.split(":") for b in args.builds.split(","))
    ]
    asyncio.run(main(args.size, args.queries, chosen, [int(e) for e in args.efs.split(",")]))
