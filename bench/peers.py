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
import time
import uuid
from collections.abc import Sequence
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
    """`--stores`: only the LangGraph stores, ours and LangGraph's, on the same data."""
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
    results = [
        await chad_store(data.base, data.queries),
        await chad_store(data.base, data.queries, ef_search=40),
    ]
    db = await create_database("bench_lg", migrate=False)
    try:
        results.append(await langgraph(data.base, data.queries, db))
    finally:
        await drop_database(db)
    print(f"### LangGraph stores, {size:,} x {dim} clustered vectors, {n_queries} queries, k={K}")
    print()
    print(_table(results))
    print()
    theirs = results[-1]
    for r in results[:-1]:
        put = r["ingest_rows_s"] / theirs["ingest_rows_s"]
        speed = theirs["unfiltered"]["p50_ms"] / r["unfiltered"]["p50_ms"]
        print(
            f"- {r['system']} vs LangGraph AsyncPostgresStore: put {put:.1f}x "
            f"the rate, search {speed:.1f}x faster "
            f"(recall {r['unfiltered']['recall']:.3f} vs {theirs['unfiltered']['recall']:.3f}), "
            f"filtered {theirs['filtered']['p50_ms'] / r['filtered']['p50_ms']:.1f}x faster"
        )
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
