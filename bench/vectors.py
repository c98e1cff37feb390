"""Vector memory: ingest, recall and latency of PgVectorStore beside raw asyncpg.

Usage: python -m bench.vectors [--size N] [--queries Q] [--skip-hnsw] [--hard]
       [--target R] [--m M] [--ef-construction E]

Everything runs in one process against one embedded server, so each of our figures comes
with the raw-database baseline measured minutes apart on the same machine state:
- ingest: `add_embeddings` (batches of 1000) vs asyncpg `copy_records_to_table` (binary);
- search: `PgVectorStore.search` vs the same statements sent with asyncpg (binary vector
  codec), after `reindex()` (IVFFLAT, lists sized to the data) and `reindex("hnsw")`;
  unfiltered, broad filter (one actor owns every row) and selective filter (1% of rows);
- recall@10 against an exact top-10 computed in NumPy, at the setting each index's
  calibration chose for the target (VECTOR_TARGET_RECALL, or --target), and the
  calibration's own cost beside the build's.

`--hard` draws a harder set: four times the clusters and more noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

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
from bench.datasets import Matrix, clustered_vectors, exact_top_k, hardness, recall_at_k

K = 10
RARE_EVERY = 100
# The recall target the stores here calibrate for (None: VECTOR_TARGET_RECALL).
TARGET: float | None = None
BATCH = 1000
SELECT_COLUMNS = (
    "id, actor, namespace, source_type, source_id, run_id, content, metadata, created_at"
)


@dataclass
class SearchRow:
    index: str
    filter: str
    recall: float
    p50_ms: float
    p95_ms: float
    raw_p50_ms: float
    overhead: float
    plan: str


def _namespace(i: int) -> str:
    return "rare" if i % RARE_EVERY == 0 else "default"


async def ingest(db: str, base: Matrix) -> dict[str, float]:
    """Rows/s of raw COPY and of the library on the same vectors; leaves the library's rows."""
    from chad_memory import EmbeddingCreate, PgVectorStore
    from chad_memory.database import create_engine, get_session_factory

    conn = await raw_connection(db)
    records = [
        (uuid.uuid4(), "alice", _namespace(i), str(i), base[i], "{}") for i in range(len(base))
    ]
    t0 = time.perf_counter()
    for start in range(0, len(records), 10_000):
        await conn.copy_records_to_table(
            "embeddings",
            records=records[start : start + 10_000],
            columns=["id", "actor", "namespace", "content", "embedding", "metadata"],
        )
    copy_s = time.perf_counter() - t0
    await conn.execute("TRUNCATE embeddings CASCADE")
    await conn.execute("CHECKPOINT")
    await conn.close()
    del records
    say(f"raw COPY: {len(base) / copy_s:,.0f} rows/s")

    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PgVectorStore(get_session_factory(engine))
    t0 = time.perf_counter()
    for start in range(0, len(base), BATCH):
        chunk = base[start : start + BATCH].tolist()
        await store.add_embeddings(
            [
                EmbeddingCreate(
                    actor="alice",
                    namespace=_namespace(start + j),
                    content=str(start + j),
                    embedding=v,
                )
                for j, v in enumerate(chunk)
            ]
        )
    lib_s = time.perf_counter() - t0
    await engine.dispose()
    say(f"add_embeddings: {len(base) / lib_s:,.0f} rows/s")
    return {"copy_rows_s": len(base) / copy_s, "library_rows_s": len(base) / lib_s}


async def _raw_search(
    conn: Any, q: np.ndarray, filters: dict[str, str], gucs: dict[str, str], exact_max: int
) -> list[str]:
    """The statements PgVectorStore.search sends, sent with plain asyncpg."""

    def where(first: int) -> str:
        return " AND ".join(f"{col} = ${i + first}" for i, col in enumerate(filters))

    params = list(filters.values())
    async with conn.transaction():
        exact = not gucs
        if filters and gucs:
            sets = ", ".join(f"set_config('{n}', '{v}', true)" for n, v in gucs.items())
            count = await conn.fetchval(
                f"SELECT (SELECT count(*) FROM (SELECT 1 FROM embeddings WHERE "
                f"{where(1)} LIMIT {exact_max}) s), {sets}",
                *params,
            )
            exact = count < exact_max
        elif gucs:
            await conn.execute(
                "SELECT " + ", ".join(f"set_config('{n}', '{v}', true)" for n, v in gucs.items())
            )
        dist = "cosine_distance(embedding, $1)" if exact else "embedding <=> $1"
        rows = await conn.fetch(
            f"SELECT * FROM (SELECT {SELECT_COLUMNS}, 1 - ({dist}) AS score FROM embeddings "
            f"{'WHERE ' + where(2) if filters else ''} ORDER BY {dist} LIMIT {K}) s "
            "ORDER BY score DESC",
            q,
            *params,
        )
    return [r["content"] for r in rows]


async def evaluate(
    db: str, label: str, queries: Matrix, truths: dict[str, np.ndarray], rows: int
) -> list[SearchRow]:
    """Recall and latency per filter for the index present, ours beside raw asyncpg."""
    from chad_memory import PgVectorStore
    from chad_memory.database import create_engine, get_session_factory

    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PgVectorStore(
        get_session_factory(engine), target_recall=TARGET, maintain_in_background=False
    )
    info = await store.index_info()
    exact_plan, gucs = store.plan(info, K)
    conn = await raw_connection(db)
    qlists = [q.tolist() for q in queries]
    rare = np.arange(rows) % RARE_EVERY == 0
    out: list[SearchRow] = []
    cases: list[tuple[str, dict[str, str]]] = [
        ("none", {}),
        ("broad (actor owns all rows)", {"actor": "alice"}),
        ("selective (1% of rows)", {"actor": "alice", "namespace": "rare"}),
    ]
    for name, filters in cases:

        async def ours(i: int, filters: dict[str, str] = filters) -> list[str]:
            hits = await store.search(qlists[i], k=K, **filters)  # type: ignore[arg-type]
            return [h.content or "" for h in hits]

        async def raw(i: int, filters: dict[str, str] = filters) -> list[str]:
            return await _raw_search(
                conn, queries[i], filters, {} if exact_plan else gucs, store.exact_scan_max_rows
            )

        p50, p95, found = await timed_passes(ours, len(queries))
        raw_p50, _, raw_found = await timed_passes(raw, len(queries))
        truth = truths["rare" if "namespace" in filters else "all"]
        recall = recall_at_k([[int(x) for x in f] for f in found], truth)
        raw_recall = recall_at_k([[int(x) for x in f] for f in raw_found], truth)
        matching = int(truth.shape[0] and (rare.sum() if "namespace" in filters else rows))
        if exact_plan or (filters and matching < store.exact_scan_max_rows):
            plan = f"exact scan of {matching:,} matching rows"
        else:
            plan = ", ".join(f"{k}={v}" for k, v in gucs.items())
        say(
            f"{label} filter={name}: recall {recall:.3f} (raw {raw_recall:.3f}) "
            f"p50 {p50:.2f} ms p95 {p95:.2f} ms raw p50 {raw_p50:.2f} ms"
        )
        out.append(SearchRow(label, name, recall, p50, p95, raw_p50, p50 / raw_p50, plan))
    await conn.close()
    await engine.dispose()
    return out


async def probe_sweep(db: str, queries: Matrix, truth: np.ndarray) -> list[list[Any]]:
    """Recall and p50 of unfiltered search at several ivfflat.probes (documents the default)."""
    from chad_memory import PgVectorStore
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.vector_index import probes_for_lists

    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PgVectorStore(get_session_factory(engine), maintain_in_background=False)
    info = await store.index_info()
    lists = info.lists or 1
    chosen = info.calibration.value if info.calibration else probes_for_lists(lists)
    qlists = [q.tolist() for q in queries]
    rows: list[list[Any]] = []
    for probes in sorted({1, 2, 4, 6, 8, 11, 16, 24, chosen}):
        store.probes = probes

        async def one(i: int) -> list[int]:
            return [int(h.content or -1) for h in await store.search(qlists[i], k=K)]

        p50, _, found = await timed_passes(one, len(queries), repeats=1)
        default = " (calibrated)" if probes == chosen else ""
        rows.append([f"{probes}{default}", recall_at_k(found, truth), p50])
        say(f"probes {probes}: recall {rows[-1][1]:.3f} p50 {p50:.2f} ms")
    await engine.dispose()
    return rows


async def ef_sweep(db: str, queries: Matrix, truth: np.ndarray) -> list[list[Any]]:
    """Recall and p50 of unfiltered search at several hnsw.ef_search (documents the default)."""
    from chad_memory import PgVectorStore
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.vector_index import ef_search_for

    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PgVectorStore(get_session_factory(engine), maintain_in_background=False)
    info = await store.index_info()
    chosen = info.calibration.value if info.calibration else ef_search_for(K)
    qlists = [q.tolist() for q in queries]
    rows: list[list[Any]] = []
    for ef in sorted({40, 64, 100, 150, 200, 300, 400, chosen}):
        store.ef_search = ef

        async def one(i: int) -> list[int]:
            return [int(h.content or -1) for h in await store.search(qlists[i], k=K)]

        p50, _, found = await timed_passes(one, len(queries), repeats=1)
        default = " (calibrated)" if ef == chosen else ""
        rows.append([f"{ef}{default}", recall_at_k(found, truth), p50])
        say(f"ef_search {ef}: recall {rows[-1][1]:.3f} p50 {p50:.2f} ms")
    await engine.dispose()
    return rows


async def exact_scan_ms(db: str, queries: Matrix) -> float:
    conn = await raw_connection(db)

    async def one(i: int) -> Any:
        return await conn.fetch(
            "SELECT id FROM embeddings ORDER BY cosine_distance(embedding, $1) LIMIT 10",
            queries[i],
        )

    p50, _, _ = await timed_passes(one, min(20, len(queries)), repeats=1)
    await conn.close()
    return p50


async def reindex(
    db: str, method: str, m: int | None = None, ef_construction: int | None = None
) -> dict[str, Any]:
    """Rebuild and calibrate; seconds of each (the calibration's own figure, from its note)."""
    from chad_memory import PgVectorStore
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.vector_index import HNSW_EF_CONSTRUCTION, HNSW_M, ReindexProgress

    last = [0.0]

    def show(p: ReindexProgress) -> None:
        if p.elapsed_s - last[0] >= 15:
            last[0] = p.elapsed_s
            say(f"  reindex {method}: {p.phase} {p.tuples_done}/{p.tuples_total}")

    engine = create_engine(sqlalchemy_url(db), pool_size=3)
    store = PgVectorStore(
        get_session_factory(engine), target_recall=TARGET, maintain_in_background=False
    )
    t0 = time.perf_counter()
    info = await store.reindex(
        method=method,  # type: ignore[arg-type]
        m=m or HNSW_M,
        ef_construction=ef_construction or HNSW_EF_CONSTRUCTION,
        progress=show,
    )
    seconds = time.perf_counter() - t0
    await engine.dispose()
    c = info.calibration
    calibration_s = c.seconds if c else 0.0
    say(f"reindex {method}: {seconds:.1f} s ({info.as_dict()})")
    return {
        "method": method,
        "seconds": seconds,
        "build_s": seconds - calibration_s,
        "calibration_s": calibration_s,
        "setting": f"{c.setting}={c.value}" if c else "-",
        "calibrated_recall": c.recall if c else None,
        "target": c.target if c else None,
        "lists": info.lists,
        "m": info.m,
        "ef_construction": info.ef_construction,
    }


async def main(
    size: int,
    n_queries: int,
    skip_hnsw: bool,
    hard_set: bool = False,
    m: int | None = None,
    ef_construction: int | None = None,
) -> dict[str, Any]:
    from chad_memory.settings import get_settings

    dim = get_settings().embedding_dim
    say(f"load: {load_line()}")
    say(f"generating {size} x {dim} clustered vectors + {n_queries} held-out queries")
    shape: dict[str, Any] = (
        {"clusters": 4 * max(8, int(np.sqrt(size) / 2)), "noise": 0.5} if hard_set else {}
    )
    data = clustered_vectors(size, dim, queries=n_queries, seed=42, **shape)
    hard = hardness(data.base, data.queries)
    say(f"hardness: {hard}")
    rare = np.arange(size) % RARE_EVERY == 0
    truths = {
        "all": exact_top_k(data.base, data.queries, K),
        "rare": exact_top_k(data.base, data.queries, K, mask=rare),
    }
    db = await create_database("bench_vec")
    try:
        rates = await ingest(db, data.base)
        exact_ms = await exact_scan_ms(db, data.queries)
        say(f"raw exact scan p50: {exact_ms:.1f} ms")
        ef_rows: list[list[Any]] = []
        builds = [await reindex(db, "ivfflat")]
        rows = await evaluate(
            db,
            f"ivfflat lists={builds[0]['lists']}, {builds[0]['setting']}",
            data.queries,
            truths,
            size,
        )
        sweep = await probe_sweep(db, data.queries, truths["all"])
        if not skip_hnsw:
            builds.append(await reindex(db, "hnsw", m, ef_construction))
            b = builds[-1]
            rows += await evaluate(
                db,
                f"hnsw m={b['m']} ef_c={b['ef_construction']}, {b['setting']}",
                data.queries,
                truths,
                size,
            )
            ef_rows = await ef_sweep(db, data.queries, truths["all"])
    finally:
        await drop_database(db)
    result = {
        "size": size,
        "dim": dim,
        "queries": n_queries,
        "load": load_line(),
        "hardness": hard,
        "ingest": rates,
        "exact_scan_p50_ms": exact_ms,
        "builds": builds,
        "search": [asdict(r) for r in rows],
        "probe_sweep": sweep,
        "ef_sweep": ef_rows,
    }
    print()
    kind = "harder clustered (4x clusters, noise 0.5)" if hard_set else "clustered"
    print(f"### Vector search, {size:,} x {dim} {kind} vectors, {n_queries} queries, k={K}")
    print()
    print(
        table(
            [
                "index",
                "filter",
                "recall@10",
                "p50 ms",
                "p95 ms",
                "raw asyncpg p50 ms",
                "ours / raw",
                "plan",
            ],
            [
                [r.index, r.filter, r.recall, r.p50_ms, r.p95_ms, r.raw_p50_ms, r.overhead, r.plan]
                for r in rows
            ],
        )
    )
    print()
    print(f"IVFFLAT lists={builds[0]['lists']}, unfiltered, ivfflat.probes against recall:")
    print()
    print(table(["ivfflat.probes", "recall@10", "p50 ms"], sweep))
    print()
    if ef_rows:
        b = builds[-1]
        print(
            f"HNSW (m={b['m']}, ef_construction={b['ef_construction']}), unfiltered, "
            "hnsw.ef_search against recall:"
        )
        print()
        print(table(["hnsw.ef_search", "recall@10", "p50 ms"], ef_rows))
        print()
    print(
        table(
            ["index", "build s", "calibration s", "calibrated setting", "sample recall", "target"],
            [
                [
                    b["method"],
                    b["build_s"],
                    b["calibration_s"],
                    b["setting"],
                    b["calibrated_recall"],
                    b["target"],
                ]
                for b in builds
            ],
        )
    )
    print()
    print(f"Raw exact scan (no index) p50: {exact_ms:.1f} ms.")
    print(
        f"Ingest: add_embeddings {rates['library_rows_s']:,.0f} rows/s, raw COPY "
        f"{rates['copy_rows_s']:,.0f} rows/s, ratio "
        f"{rates['library_rows_s'] / rates['copy_rows_s']:.2f}"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=int(os.environ.get("SIZE", "100000")))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-hnsw", action="store_true")
    parser.add_argument("--hard", action="store_true", help="4x the clusters, more noise")
    parser.add_argument("--target", type=float, default=None, help="recall to calibrate for")
    parser.add_argument("--m", type=int, default=None)
    parser.add_argument("--ef-construction", type=int, default=None)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    TARGET = args.target
    figures = asyncio.run(
        main(args.size, args.queries, args.skip_hnsw, args.hard, args.m, args.ef_construction)
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=2)
