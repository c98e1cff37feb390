"""Memory in time: a search `as_of` a past instant against the same search of what is
current, on a table where 10% of the memories were superseded (a new version under the
same key).

Library calls (`PgVectorStore.search`) on a fresh bench database with the calibrated
IVFFLAT index (`reindex`); recall@10 against an exact numpy scan of the rows valid at
the time searched. Run: `.venv/bin/python -m bench.memory_time` (SIZE=20000 by default).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime

import numpy as np

from bench.common import (
    create_database,
    drop_database,
    load_line,
    say,
    sqlalchemy_url,
    table,
    timed_passes,
)
from bench.datasets import clustered_vectors, exact_top_k, recall_at_k
from chad_memory import EmbeddingCreate, PgVectorStore
from chad_memory.database import create_engine, get_session_factory
from chad_memory.settings import Settings

SIZE = int(os.environ.get("SIZE", "20000"))
SUPERSEDED = 0.10
K = 10
BATCH = 1000
QUERIES = 100


async def main() -> None:
    settings = Settings()
    dim = settings.embedding_dim
    data = clustered_vectors(SIZE + int(SIZE * SUPERSEDED), dim, queries=QUERIES)
    first, replacements = data.base[:SIZE], data.base[SIZE:]
    db = await create_database("memtime")
    engine = create_engine(sqlalchemy_url(db), settings)
    store = PgVectorStore(get_session_factory(engine), embedder=None)
    try:
        ids: list[str] = []
        t0 = time.perf_counter()
        for start in range(0, SIZE, BATCH):
            rows = [
                EmbeddingCreate(actor="bench", key=f"k{i}", embedding=first[i].tolist())
                for i in range(start, min(SIZE, start + BATCH))
            ]
            ids += [str(r.id) for r in await store.add_embeddings(rows)]
        await asyncio.sleep(0.01)
        between = datetime.now(UTC)
        await asyncio.sleep(0.01)
        superseded = len(replacements)
        new_ids: list[str] = []
        for start in range(0, superseded, BATCH):
            rows = [
                EmbeddingCreate(actor="bench", key=f"k{i}", embedding=replacements[i].tolist())
                for i in range(start, min(superseded, start + BATCH))
            ]
            new_ids += [str(r.id) for r in await store.add_embeddings(rows)]
        say(f"{SIZE + superseded:,} rows in {time.perf_counter() - t0:.0f} s; reindexing")
        info = await store.reindex()
        say(f"index {info.method} lists={info.lists}, calibration {info.calibration}")

        # The rows valid at each time, in the order of `then_ids` / `now_ids`.
        then_ids, then_base = ids, first
        now_ids = new_ids + ids[superseded:]
        now_base = np.vstack([replacements, first[superseded:]])
        queries = data.queries

        def positions(found: list[list[str]], order: list[str]) -> list[list[int]]:
            at = {rid: i for i, rid in enumerate(order)}
            return [[at.get(r, -1) for r in hits] for hits in found]

        async def now(i: int) -> list[str]:
            hits = await store.search(queries[i].tolist(), k=K, actor="bench")
            return [str(h.id) for h in hits]

        async def then(i: int) -> list[str]:
            hits = await store.search(queries[i].tolist(), k=K, actor="bench", as_of=between)
            return [str(h.id) for h in hits]

        now_p50, now_p95, now_found = await timed_passes(now, QUERIES)
        then_p50, then_p95, then_found = await timed_passes(then, QUERIES)
        now_recall = recall_at_k(positions(now_found, now_ids), exact_top_k(now_base, queries, K))
        then_recall = recall_at_k(
            positions(then_found, then_ids), exact_top_k(then_base, queries, K)
        )
        print(f"load: {load_line()}")
        print(
            f"{SIZE:,} memories x {dim}-d + {superseded:,} new versions "
            f"({SUPERSEDED:.0%} superseded), {QUERIES} queries, k={K}, "
            f"index {info.method} lists={info.lists}"
        )
        print(
            table(
                ["search", "recall@10", "p50 ms", "p95 ms", "p50 ratio"],
                [
                    ["current (baseline)", now_recall, now_p50, now_p95, 1.0],
                    [
                        "as_of before the supersede",
                        then_recall,
                        then_p50,
                        then_p95,
                        then_p50 / now_p50,
                    ],
                ],
            )
        )
    finally:
        await store.close()
        await engine.dispose()
        await drop_database(db)


if __name__ == "__main__":
    asyncio.run(main())
