"""Calibration: recall as a promise, kept on the data present and seen by every process.

Lean sizes (a few thousand vectors) so CI stays fast; recall is asserted on held-out
queries from the same distribution, never time (`make bench` measures speed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

import asyncpg
import numpy as np
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.datasets import clustered_vectors, exact_top_k, recall_at_k
from chad_memory import EmbeddingCreate, InvalidInputError, PgVectorStore, get_session_factory
from chad_memory.database import create_engine
from chad_memory.settings import get_settings
from chad_memory.vector_calibration import MIN_DECIDING, _Measure, _Sample, aim_for
from chad_memory.vector_index import STALE_GROWTH

DIM = get_settings().embedding_dim
K = 10


async def _load(store: PgVectorStore, base: np.ndarray, start: int = 0) -> None:
    items = [
        EmbeddingCreate(actor="alice", content=str(start + i), embedding=v.tolist())
        for i, v in enumerate(base)
    ]
    for at in range(0, len(items), 1000):
        await store.add_embeddings(items[at : at + 1000])


async def _recall(store: PgVectorStore, queries: np.ndarray, truth: np.ndarray) -> float:
    found = [[int(h.content or -1) for h in await store.search(q.tolist(), k=K)] for q in queries]
    return recall_at_k(found, truth)


async def _sent_settings(engine: AsyncEngine) -> list[dict[str, str]]:
    """Every set_config the engine's connections send, as {name: value} per statement
    (what the server got): asyncpg's own query log, which sees the driver path too."""
    sent: list[dict[str, str]] = []

    def capture(query: asyncpg.connection.LoggedQuery) -> None:
        if "set_config" in query.query:
            values = [p for p in query.args if isinstance(p, str)]
            names = [v for v in values if "." in v or v == "plan_cache_mode"]
            pairs = {values[i]: values[i + 1] for i in range(len(values) - 1) if values[i] in names}
            sent.append(pairs)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(capture)

    event.listen(engine.sync_engine, "connect", on_connect)
    await engine.dispose()  # connections opened from now on log
    return sent


async def test_calibration_picks_more_probes_for_harder_data_and_meets_the_target(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    store = PgVectorStore(session_factory, maintain_in_background=False)
    chosen: dict[str, int] = {}
    for name, shape in {
        "easy": {"clusters": 6, "spread": 0.4, "noise": 0.1},
        "hard": {"clusters": 120, "spread": 2.0, "noise": 0.5},
    }.items():
        data = clustered_vectors(2000, DIM, queries=40, seed=21, **shape)  # type: ignore[arg-type]
        await _load(store, data.base)
        info = await store.reindex(lists=40)
        calibration = info.calibration
        assert calibration is not None
        assert calibration.setting == "ivfflat.probes"
        assert calibration.rows == 2000
        assert calibration.recall >= aim_for(store.target_recall)
        chosen[name] = calibration.value
        # The promise, on queries the calibration never saw.
        held_out = await _recall(store, data.queries, exact_top_k(data.base, data.queries, K))
        assert held_out >= store.target_recall, (name, calibration, held_out)
        async with session_factory() as session:
            await session.execute(text("TRUNCATE embeddings CASCADE"))
            await session.commit()
    assert chosen["hard"] > chosen["easy"], chosen


async def test_hnsw_calibrates_ef_search_for_a_high_target(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    store = PgVectorStore(session_factory, target_recall=0.99, maintain_in_background=False)
    data = clustered_vectors(1500, DIM, queries=40, seed=8, clusters=60, noise=0.5)
    await _load(store, data.base)
    info = await store.reindex(method="hnsw", m=8, ef_construction=32)
    assert info.m == 8
    assert info.ef_construction == 32
    assert info.calibration is not None
    assert info.calibration.setting == "hnsw.ef_search"
    assert info.calibration.target == 0.99
    assert await _recall(store, data.queries, exact_top_k(data.base, data.queries, K)) >= 0.99


async def test_a_reindex_elsewhere_is_used_by_the_next_search(
    database_url: str, engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    # This process searches on its own engine; another process (the CLI) rebuilds.
    store = PgVectorStore(session_factory, maintain_in_background=False)
    data = clustered_vectors(1500, DIM, queries=5, seed=4)
    await _load(store, data.base)
    sent = await _sent_settings(engine)
    query = data.queries[0].tolist()
    await store.search(query, k=K)  # revision 001's index, trained on nothing: exact
    assert not any("ivfflat.probes" in s for s in sent)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chad_memory.cli",
        "memory",
        "reindex",
        "--lists",
        "30",
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, out.decode()
    assert "calibration: ivfflat.probes=" in out.decode()
    other = create_engine(database_url, pool_size=1)
    try:
        built = await PgVectorStore(get_session_factory(other)).index_info()
    finally:
        await other.dispose()
    assert built.calibration is not None
    # No sleep: the very next search runs with the other process's calibrated probes.
    sent.clear()
    await store.search(query, k=K)
    assert sent[-1]["ivfflat.probes"] == str(built.calibration.value)

    # A calibration by another process (same index, new note) is seen the same way.
    other = create_engine(database_url, pool_size=2)
    try:
        elsewhere = PgVectorStore(get_session_factory(other), target_recall=0.999)
        recalibrated = await elsewhere.calibrate()
    finally:
        await other.dispose()
    assert recalibrated.oid == built.oid
    assert recalibrated.calibration is not None
    assert recalibrated.calibration.target == 0.999
    sent.clear()
    await store.search(query, k=K)
    assert sent[-1]["ivfflat.probes"] == str(recalibrated.calibration.value)
    # Once seen, the index costs no extra round trip: settings go with the preparing one.
    sent.clear()
    await store.search(query, k=K)
    assert len(sent) == 1


async def test_growth_recalibrates_then_rebuilds_in_the_background(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    store = PgVectorStore(session_factory)
    data = clustered_vectors(2600, DIM, queries=20, seed=6)
    await _load(store, data.base[:1000])
    built = await store.reindex(lists=20)
    assert built.calibration is not None
    assert built.calibration.rows == 1000
    query = data.queries[0].tolist()

    # 1.6x the rows it was calibrated on: the next search starts a recalibration.
    await _load(store, data.base[1000:1600], start=1000)
    await store.search(query, k=K)
    await store.wait_for_maintenance()
    info = await store.index_info()
    assert info.oid == built.oid  # the same index
    assert info.trained_rows == 1000
    assert info.calibration is not None
    assert info.calibration.rows == 1600

    # Past STALE_GROWTH x the rows it was built on: rebuilt (CONCURRENTLY) and calibrated.
    await _load(store, data.base[1600:], start=1600)
    assert STALE_GROWTH * 1000 < 2600
    await store.search(query, k=K)
    await store.wait_for_maintenance()
    info = await store.index_info()
    assert info.oid != built.oid
    assert info.trained_rows == 2600
    assert not info.stale
    assert info.calibration is not None
    assert info.calibration.rows == 2600
    truth = exact_top_k(data.base, data.queries, K)
    assert await _recall(store, data.queries, truth) >= store.target_recall


async def test_growth_without_auto_rebuild_is_announced(
    session_factory: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    store = PgVectorStore(session_factory, auto_rebuild=False)
    data = clustered_vectors(2500, DIM, queries=3, seed=7)
    await _load(store, data.base[:1000])
    built = await store.reindex(lists=20)
    await _load(store, data.base[1000:], start=1000)
    with caplog.at_level(logging.WARNING, logger="chad_memory.stores.vectors"):
        hits = await store.search(data.queries[0].tolist(), k=K)
    await store.wait_for_maintenance()
    assert len(hits) == K
    info = await store.index_info()
    assert info.oid == built.oid  # not rebuilt
    assert info.rebuild_due
    assert info.as_dict()["rebuild_due"] is True
    assert "a rebuild is due" in caplog.text


async def test_bad_targets_are_refused(session_factory: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(InvalidInputError):
        PgVectorStore(session_factory, target_recall=1.5)
    with pytest.raises(InvalidInputError):
        PgVectorStore(session_factory, target_recall=-0.1)


def test_a_measurement_stops_only_once_its_verdict_is_known() -> None:
    """Settings are judged on part of the queries when the rest cannot change the verdict
    (or, statistically, hardly could); with every query in, the verdict is exact."""
    n = 200
    sample = _Sample([None] * n, np.zeros((n, 2), np.float32), np.zeros(n), K, [""] * n)

    def verdict(per_query: list[float], aim: float = 0.975) -> bool | None:
        measure = _Measure(sample, aim)
        measure.per_query = per_query
        return measure.verdict()

    # Certain: more misses than the aim allows (5 misses of 200 queries), or enough hits.
    assert verdict([0.0] * 6) is False
    assert verdict([1.0] * 195) is True
    # Too few queries for a statistical verdict, then a clear pass / fail.
    assert verdict([1.0] * (MIN_DECIDING - 1)) is None
    assert verdict([1.0] * 120) is True
    assert verdict([0.9] * 60) is False
    # Near the aim it takes every query, and then it is exact.
    assert verdict([0.97] * 150) is None
    assert verdict([0.975] * 200) is True
    assert verdict([0.97] * 200) is False
