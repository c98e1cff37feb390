"""Peers on the same server and the same vectors: LangGraph's store, langchain's PGVector.

Usage: python -m bench.peers [--size N] [--queries Q] [--stores]

`--stores` runs only the LangGraph stores: chad-memory's ChadMemoryStore beside LangGraph's
AsyncPostgresStore (needs only langgraph-checkpoint-postgres and psycopg besides the dev
install).

Each system gets its own database on the one embedded server, the same clustered vectors
(a fake embedding function returns our precomputed vectors, so no model runs), the same
200 held-out queries and the same selective filter (1% of rows, `rare: true`). Reported:
ingest rows/s, recall@10 against NumPy's exact top-10, p50/p95 of search with and
without the filter; and, as the raw-database baseline, the same table searched with plain
asyncpg on the HNSW index at pgvector's defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.common import (
    REPEATS,
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
from bench.datasets import Matrix, clustered_vectors, exact_top_k, recall_at_k

K = 10
RARE_EVERY = 100


def _rare(i: int) -> bool:
    return i % RARE_EVERY == 0


class Result(dict[str, Any]):
    pass


async def _measure(
    name: str,
    ingest_rows_s: float,
    search: Any,
    queries: Matrix,
    truth: np.ndarray,
    truth_rare: np.ndarray,
) -> dict[str, Any]:
    out: dict[str, Any] = {"system": name, "ingest_rows_s": ingest_rows_s}
    for label, filtered, t in (("unfiltered", False, truth), ("filtered", True, truth_rare)):

        async def one(i: int, filtered: bool = filtered) -> list[int]:
            found: list[int] = await search(i, filtered)
            return found

        p50, p95, found = await timed_passes(one, len(queries))
        out[label] = {"recall": recall_at_k(found, t), "p50_ms": p50, "p95_ms": p95}
        say(f"{name} {label}: {out[label]}")
    return out


async def ours(
    base: Matrix, queries: Matrix, method: str, ef_search: int | None = None
) -> tuple[float, Any, Any]:
    from chad_memory import EmbeddingCreate, PgVectorStore
    from chad_memory.database import create_engine, get_session_factory

    db = await create_database("bench_ours")
    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PgVectorStore(get_session_factory(engine), ef_search=ef_search)
    t0 = time.perf_counter()
    for start in range(0, len(base), 1000):
        await store.add_embeddings(
            [
                EmbeddingCreate(
                    actor="alice",
                    content=str(start + j),
                    embedding=v,
                    metadata={"rare": _rare(start + j)},
                )
                for j, v in enumerate(base[start : start + 1000].tolist())
            ]
        )
    rate = len(base) / (time.perf_counter() - t0)
    await store.reindex(method=method)  # type: ignore[arg-type]
    qlists = [q.tolist() for q in queries]

    async def search(i: int, filtered: bool) -> list[int]:
        # Unfiltered means no filter at all, as for the peers; filtered: actor + metadata.
        if filtered:
            hits = await store.search(qlists[i], k=K, actor="alice", metadata={"rare": True})
        else:
            hits = await store.search(qlists[i], k=K)
        return [int(h.content or -1) for h in hits]

    async def close() -> None:
        await engine.dispose()
        await drop_database(db)

    return rate, search, (close, db)


async def raw_hnsw(db: str, queries: Matrix) -> Any:
    """pgvector's defaults (ef_search 40), plain asyncpg, binary vectors: the baseline."""
    conn = await raw_connection(db)

    async def search(i: int, filtered: bool) -> list[int]:
        where = "WHERE actor = 'alice' AND metadata @> '{\"rare\": true}'" if filtered else ""
        rows = await conn.fetch(
            f"SELECT content FROM embeddings {where} ORDER BY embedding <=> $1 LIMIT {K}",
            queries[i],
        )
        return [int(r[0]) for r in rows]

    return conn, search


async def langgraph(base: Matrix, queries: Matrix, uri: str) -> dict[str, Any]:
    from langgraph.store.base import PutOp
    from langgraph.store.postgres.aio import AsyncPostgresStore

    lookup = {str(i): v for i, v in enumerate(base.tolist())}
    lookup.update({f"q{i}": v for i, v in enumerate(queries.tolist())})

    async def embed(texts: list[str]) -> list[list[float]]:
        return [lookup[t] for t in texts]

    index = {"dims": base.shape[1], "embed": embed, "fields": ["text"]}
    async with AsyncPostgresStore.from_conn_string(uri, index=index) as store:  # type: ignore[arg-type]
        await store.setup()
        t0 = time.perf_counter()
        for start in range(0, len(base), 500):
            await store.abatch(
                [
                    PutOp(("docs",), str(i), {"text": str(i), "rare": _rare(i)})
                    for i in range(start, min(len(base), start + 500))
                ]
            )
        rate = len(base) / (time.perf_counter() - t0)
        say(f"langgraph ingest {rate:,.0f} rows/s")

        async def search(i: int, filtered: bool) -> list[int]:
            items = await store.asearch(
                ("docs",), query=f"q{i}", limit=K, filter={"rare": True} if filtered else None
            )
            return [int(item.key) for item in items]

        return await _measure("LangGraph AsyncPostgresStore", rate, search, queries, *_truths)


async def chad_store(base: Matrix, queries: Matrix, ef_search: int | None = None) -> dict[str, Any]:
    """ChadMemoryStore (LangGraph's BaseStore on chad-memory) beside AsyncPostgresStore:
    the same ops (PutOp batches of 500, asearch by query, filter {"rare": True}).

    Like the PgVectorStore rows: ingest into the migrated schema (its IVFFLAT index),
    then `reindex(method="hnsw")` as an operator would, then search. LangGraph's store
    maintains its HNSW index during ingest."""
    from langgraph.store.base import IndexConfig, PutOp

    from chad_memory import PgVectorStore
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.integrations.langgraph import ChadMemoryStore

    lookup = {str(i): v for i, v in enumerate(base.tolist())}
    lookup.update({f"q{i}": v for i, v in enumerate(queries.tolist())})

    async def embed(texts: Sequence[str]) -> list[list[float]]:
        return [lookup[t] for t in texts]

    db = await create_database("bench_store")
    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    factory = get_session_factory(engine)
    try:
        index: IndexConfig = {"dims": base.shape[1], "embed": embed, "fields": ["text"]}
        store = ChadMemoryStore(factory, actor="alice", index=index)
        t0 = time.perf_counter()
        for start in range(0, len(base), 500):
            await store.abatch(
                [
                    PutOp(("docs",), str(i), {"text": str(i), "rare": _rare(i)})
                    for i in range(start, min(len(base), start + 500))
                ]
            )
        rate = len(base) / (time.perf_counter() - t0)
        say(f"ChadMemoryStore ingest {rate:,.0f} rows/s")
        await PgVectorStore(factory).reindex(method="hnsw")
        store = ChadMemoryStore(factory, actor="alice", index=index)
        store._vectors.ef_search = ef_search

        async def search(i: int, filtered: bool) -> list[int]:
            items = await store.asearch(
                ("docs",), query=f"q{i}", limit=K, filter={"rare": True} if filtered else None
            )
            return [int(item.key) for item in items]

        label = f"hnsw, ef_search={ef_search}" if ef_search else "hnsw, defaults"
        return await _measure(
            f"chad-memory ChadMemoryStore ({label})", rate, search, queries, *_truths
        )
    finally:
        await engine.dispose()
        await drop_database(db)


async def stores_only(size: int, n_queries: int) -> dict[str, Any]:
    """`--stores`: ChadMemoryStore (ef_search default and 40) beside AsyncPostgresStore.

    All three stay open and are timed query by query in turn (A, B, C, A, B, C, ...), so
    a swing in the machine's load hits every system alike: on a shared machine, timing
    one system after the other gave ratios 4x apart between two runs.
    """
    global _truths
    from langgraph.store.base import IndexConfig, PutOp
    from langgraph.store.postgres.aio import AsyncPostgresStore

    from chad_memory import PgVectorStore
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.integrations.langgraph import ChadMemoryStore
    from chad_memory.settings import get_settings

    dim = get_settings().embedding_dim
    say(f"load: {load_line()}")
    data = clustered_vectors(size, dim, queries=n_queries, seed=7)
    rare = np.arange(size) % RARE_EVERY == 0
    truths = (
        exact_top_k(data.base, data.queries, K),
        exact_top_k(data.base, data.queries, K, mask=rare),
    )
    lookup = {str(i): v for i, v in enumerate(data.base.tolist())}
    lookup.update({f"q{i}": v for i, v in enumerate(data.queries.tolist())})

    async def embed(texts: Sequence[str]) -> list[list[float]]:
        return [lookup[t] for t in texts]

    index: IndexConfig = {"dims": dim, "embed": embed, "fields": ["text"]}

    def batches() -> list[list[PutOp]]:
        return [
            [
                PutOp(("docs",), str(i), {"text": str(i), "rare": _rare(i)})
                for i in range(start, min(size, start + 500))
            ]
            for start in range(0, size, 500)
        ]

    ours_db = await create_database("bench_store")
    theirs_db = await create_database("bench_lg", migrate=False)
    engine = create_engine(sqlalchemy_url(ours_db), pool_size=2)
    factory = get_session_factory(engine)
    try:
        store = ChadMemoryStore(factory, actor="alice", index=index)
        t0 = time.perf_counter()
        for ops in batches():
            await store.abatch(ops)
        ours_rate = size / (time.perf_counter() - t0)
        say(f"ChadMemoryStore ingest {ours_rate:,.0f} rows/s")
        await PgVectorStore(factory).reindex(method="hnsw")
        ours = ChadMemoryStore(factory, actor="alice", index=index)
        ours40 = ChadMemoryStore(factory, actor="alice", index=index)
        ours40._vectors.ef_search = 40
        async with AsyncPostgresStore.from_conn_string(theirs_db, index=index) as theirs:  # type: ignore[arg-type]
            await theirs.setup()
            t0 = time.perf_counter()
            for ops in batches():
                await theirs.abatch(ops)
            theirs_rate = size / (time.perf_counter() - t0)
            say(f"LangGraph ingest {theirs_rate:,.0f} rows/s")
            systems: list[tuple[str, Any, float]] = [
                ("chad-memory ChadMemoryStore (hnsw, defaults)", ours, ours_rate),
                ("chad-memory ChadMemoryStore (hnsw, ef_search=40)", ours40, ours_rate),
                ("LangGraph AsyncPostgresStore", theirs, theirs_rate),
            ]
            results: list[dict[str, Any]] = [
                {"system": name, "ingest_rows_s": rate} for name, _, rate in systems
            ]
            for label, filtered, truth in (
                ("unfiltered", False, truths[0]),
                ("filtered", True, truths[1]),
            ):
                flt = {"rare": True} if filtered else None
                p50s: list[list[float]] = [[] for _ in systems]
                p95s: list[list[float]] = [[] for _ in systems]
                found: list[list[list[int]]] = [[] for _ in systems]
                for _ in range(REPEATS):
                    times: list[list[float]] = [[] for _ in systems]
                    found = [[] for _ in systems]
                    for i in range(n_queries):
                        for n, (_, system, _) in enumerate(systems):
                            t1 = time.perf_counter()
                            items = await system.asearch(
                                ("docs",), query=f"q{i}", limit=K, filter=flt
                            )
                            times[n].append((time.perf_counter() - t1) * 1000)
                            found[n].append([int(item.key) for item in items])
                    for n in range(len(systems)):
                        p50s[n].append(percentile(times[n], 0.5))
                        p95s[n].append(percentile(times[n], 0.95))
                for n, result in enumerate(results):
                    result[label] = {
                        "recall": recall_at_k(found[n], truth),
                        "p50_ms": statistics.median(p50s[n]),
                        "p95_ms": statistics.median(p95s[n]),
                    }
                    say(f"{result['system']} {label}: {result[label]}")
    finally:
        await engine.dispose()
        await drop_database(ours_db)
        await drop_database(theirs_db)
    print(f"### LangGraph stores, {size:,} x {dim} clustered vectors, {n_queries} queries, k={K}")
    print()
    print(_table(results))
    print()
    theirs_r = results[-1]
    for r in results[:-1]:
        put = r["ingest_rows_s"] / theirs_r["ingest_rows_s"]
        speed = theirs_r["unfiltered"]["p50_ms"] / r["unfiltered"]["p50_ms"]
        print(
            f"- {r['system']} vs LangGraph AsyncPostgresStore: put {put:.1f}x "
            f"the rate, search {speed:.1f}x faster "
            f"(recall {r['unfiltered']['recall']:.3f} vs {theirs_r['unfiltered']['recall']:.3f}), "
            f"filtered {theirs_r['filtered']['p50_ms'] / r['filtered']['p50_ms']:.1f}x faster"
        )
    print()
    print(f"Load when the script finished: `{load_line()}`.")
    return {"size": size, "dim": dim, "queries": n_queries, "load": load_line(), "results": results}


def _table(results: list[dict[str, Any]]) -> str:
    return table(
        [
            "system",
            "ingest rows/s",
            "recall@10",
            "p50 ms",
            "p95 ms",
            "filtered recall@10",
            "filtered p50 ms",
            "filtered p95 ms",
        ],
        [
            [
                r["system"],
                "-" if r["ingest_rows_s"] != r["ingest_rows_s"] else r["ingest_rows_s"],
                r["unfiltered"]["recall"],
                r["unfiltered"]["p50_ms"],
                r["unfiltered"]["p95_ms"],
                r["filtered"]["recall"],
                r["filtered"]["p50_ms"],
                r["filtered"]["p95_ms"],
            ]
            for r in results
        ],
    )


async def pgvector_langchain(base: Matrix, queries: Matrix, uri: str) -> dict[str, Any]:
    from langchain_core.embeddings import Embeddings
    from langchain_postgres import PGVector

    class Precomputed(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise NotImplementedError("vectors are passed in precomputed")

        def embed_query(self, text: str) -> list[float]:
            raise NotImplementedError("vectors are passed in precomputed")

    url = "postgresql+psycopg://" + uri.split("://", 1)[1]
    store = PGVector(
        embeddings=Precomputed(),
        connection=url,
        embedding_length=base.shape[1],
        collection_name="bench",
        use_jsonb=True,
    )
    vectors = base.tolist()
    t0 = time.perf_counter()
    for start in range(0, len(base), 1000):
        ids = range(start, min(len(base), start + 1000))
        store.add_embeddings(
            texts=[str(i) for i in ids],
            embeddings=[vectors[i] for i in ids],
            metadatas=[{"i": i, "rare": _rare(i)} for i in ids],
            ids=[str(uuid.uuid4()) for _ in ids],
        )
    rate = len(base) / (time.perf_counter() - t0)
    say(f"PGVector ingest {rate:,.0f} rows/s")
    qlists = queries.tolist()

    async def search(i: int, filtered: bool) -> list[int]:
        docs = store.similarity_search_by_vector(
            qlists[i], k=K, filter={"rare": {"$eq": True}} if filtered else None
        )
        return [int(d.metadata["i"]) for d in docs]

    return await _measure("langchain-postgres PGVector", rate, search, queries, *_truths)


_truths: tuple[np.ndarray, np.ndarray]


async def main(size: int, n_queries: int) -> dict[str, Any]:
    global _truths
    from chad_memory.settings import get_settings

    dim = get_settings().embedding_dim
    say(f"load: {load_line()}")
    data = clustered_vectors(size, dim, queries=n_queries, seed=7)
    rare = np.arange(size) % RARE_EVERY == 0
    _truths = (
        exact_top_k(data.base, data.queries, K),
        exact_top_k(data.base, data.queries, K, mask=rare),
    )
    results: list[dict[str, Any]] = []
    # Ours three ways: HNSW at our default ef_search (256), HNSW at pgvector's default
    # (40, what raw and LangGraph use), IVFFLAT after reindex().
    for method, ef in (("hnsw", None), ("hnsw", 40), ("ivfflat", None)):
        rate, search, (close, db) = await ours(data.base, data.queries, method, ef)
        label = f"{method}, ef_search={ef}" if ef else f"{method}, defaults"
        results.append(
            await _measure(
                f"chad-memory PgVectorStore ({label})", rate, search, data.queries, *_truths
            )
        )
        if method == "hnsw" and ef is None:
            conn, raw = await raw_hnsw(db, data.queries)
            results.append(
                await _measure(
                    "raw asyncpg, HNSW at pgvector defaults",
                    float("nan"),
                    raw,
                    data.queries,
                    *_truths,
                )
            )
            await conn.close()
        await close()
    results.append(await chad_store(data.base, data.queries))
    for name, peer in (("lg", langgraph), ("pgv", pgvector_langchain)):
        db = await create_database(f"bench_{name}", migrate=False)
        try:
            results.append(await peer(data.base, data.queries, db))
        finally:
            await drop_database(db)

    print(f"### Peers, {size:,} x {dim} clustered vectors, {n_queries} queries, k={K}")
    print()
    print(_table(results))
    ours_h = results[0]
    print()
    for r in results[5:]:
        search = r["unfiltered"]["p50_ms"] / ours_h["unfiltered"]["p50_ms"]
        filtered = r["filtered"]["p50_ms"] / ours_h["filtered"]["p50_ms"]
        ingest = ours_h["ingest_rows_s"] / r["ingest_rows_s"]
        print(
            f"- vs {r['system']}: search {search:.1f}x faster, filtered {filtered:.1f}x "
            f"faster, ingest {ingest:.1f}x the rate (ours: HNSW, defaults)"
        )
        ef40 = results[2]["unfiltered"]
        theirs = r["unfiltered"]
        print(
            f"  at ef_search=40: search {theirs['p50_ms'] / ef40['p50_ms']:.1f}x faster "
            f"(recall {ef40['recall']:.3f} vs {theirs['recall']:.3f})"
        )
    return {"size": size, "dim": dim, "queries": n_queries, "load": load_line(), "results": results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=int(os.environ.get("PEER_SIZE", "10000")))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--stores", action="store_true", help="only ChadMemoryStore vs AsyncPostgresStore"
    )
    args = parser.parse_args()
    figures = asyncio.run((stores_only if args.stores else main)(args.size, args.queries))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=2)
