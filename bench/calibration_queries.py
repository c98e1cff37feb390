"""Which queries calibration may use: recall of each kind beside held-out queries.

Usage: python -m bench.calibration_queries [--size N] [--queries Q] [--realtext]

`--realtext`: MiniLM docstrings as in bench/realtext.py (run with EMBEDDING_DIM=384;
embeddings cached by that script) instead of clustered vectors, held-out docstrings as the
held-out queries.

Calibration can only make queries from the stored vectors. This measures, on one table,
recall@10 at several ef_search / probes for: held-out queries (what users send: the
figure calibration must not overstate), stored vectors with their own row excluded,
midpoints of two random stored vectors, and the mean of those two (what calibration uses).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from typing import Any

import numpy as np

from bench.common import create_database, drop_database, load_line, raw_connection, say, table
from bench.datasets import Matrix, clustered_vectors, exact_top_k

K = 10


async def _recall(
    conn: Any, queries: Matrix, truth: list[set[int]], own: list[int] | None, gucs: str
) -> float:
    hits = 0
    async with conn.transaction():
        await conn.execute(gucs)
        for i, q in enumerate(queries):
            rows = await conn.fetch(
                f"SELECT content FROM embeddings ORDER BY embedding <=> $1 LIMIT {K + 1}", q
            )
            got = [int(r[0]) for r in rows if own is None or int(r[0]) != own[i]][:K]
            hits += len(set(got) & truth[i])
    return hits / (K * len(queries))


async def main(size: int, n: int, realtext: bool, hard: bool) -> None:
    dim = int(os.environ.get("EMBEDDING_DIM", "1536"))
    if realtext:
        from bench.realtext import docstrings, embed, split

        base, held = split(embed(docstrings(size + n)), n)
        size = len(base)
        kind = "MiniLM docstring"
    else:
        shape: dict[str, Any] = (
            {"clusters": 4 * max(8, int(np.sqrt(size) / 2)), "noise": 0.5} if hard else {}
        )
        data = clustered_vectors(size, dim, queries=n, seed=1, **shape)
        base, held = data.base, data.queries
        kind = "harder clustered (4x clusters, noise 0.5)" if hard else "clustered"
    rng = np.random.default_rng(0)
    sample = rng.choice(size, n, replace=False)
    other = rng.choice(size, n, replace=False)
    sims = base[sample] @ base.T
    sims[np.arange(n), sample] = -9.0
    mid = base[sample] + base[other]
    mid = (mid / np.linalg.norm(mid, axis=1, keepdims=True)).astype(np.float32)
    # A stored vector pulled a third of the way towards another: a point near the data
    # that is in no list's and no graph node's place (its own row counts as a neighbour).
    near = base[sample] + 0.5 * base[other]
    near = (near / np.linalg.norm(near, axis=1, keepdims=True)).astype(np.float32)
    sets: dict[str, tuple[Matrix, list[set[int]], list[int] | None]] = {
        "held-out": (
            held,
            [set(map(int, t)) for t in exact_top_k(base, held, K)],
            None,
        ),
        "stored (self excluded)": (
            base[sample],
            [set(map(int, np.argsort(-s)[:K])) for s in sims],
            [int(i) for i in sample],
        ),
        "midpoint of two stored": (
            mid,
            [set(map(int, t)) for t in exact_top_k(base, mid, K)],
            None,
        ),
        "stored + 0.5 x another": (
            near,
            [set(map(int, t)) for t in exact_top_k(base, near, K)],
            None,
        ),
    }
    db = await create_database("bench_calq")
    rows: list[list[Any]] = []
    try:
        conn = await raw_connection(db)
        records = [(uuid.uuid4(), "a", "d", str(i), base[i], "{}") for i in range(size)]
        await conn.copy_records_to_table(
            "embeddings",
            records=records,
            columns=["id", "actor", "namespace", "content", "embedding", "metadata"],
        )
        await conn.execute("DROP INDEX IF EXISTS ix_embeddings_embedding_ivfflat")
        await conn.execute("SET maintenance_work_mem = '1GB'")
        builds = [
            ("hnsw", "hnsw.ef_search", (10, 20, 40, 80, 160), "m = 16, ef_construction = 64"),
            (
                "ivfflat",
                "ivfflat.probes",
                (1, 2, 4, 8, 12, 16, 24, 32),
                f"lists = {round(size**0.5)}",
            ),
        ]
        for method, setting, values, options in builds:
            await conn.execute("DROP INDEX IF EXISTS ix_calq")
            t0 = time.perf_counter()
            await conn.execute(
                f"CREATE INDEX ix_calq ON embeddings USING {method} "
                f"(embedding vector_cosine_ops) WITH ({options})"
            )
            say(f"{method} built in {time.perf_counter() - t0:.0f} s")
            for value in values:
                got = {
                    name: await _recall(conn, q, t, own, f"SET LOCAL {setting} = {value}")
                    for name, (q, t, own) in sets.items()
                }
                mean = (got["stored (self excluded)"] + got["midpoint of two stored"]) / 2
                rows.append([f"{method} {setting}={value}", *got.values(), mean])
                say(str(rows[-1]))
        await conn.close()
    finally:
        await drop_database(db)
    print(f"### Calibration queries, {size:,} x {dim} {kind} vectors, {n} queries, k={K}")
    print()
    print(table(["index, setting", *sets, "calibration (mean of the two)"], rows))
    print()
    print(f"Load when the script finished: `{load_line()}`")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--realtext", action="store_true", help="MiniLM docstrings (384-d)")
    parser.add_argument("--hard", action="store_true", help="4x the clusters, more noise")
    args = parser.parse_args()
    asyncio.run(main(args.size, args.queries, args.realtext, args.hard))
