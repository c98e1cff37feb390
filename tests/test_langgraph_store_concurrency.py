"""ChadMemoryStore under concurrency and TTL settings, as LangGraph's own store tests
drive it: sync calls from many threads at once, refresh-on-read that never waits for a
row lock (so two reads cannot deadlock), and `omit_expired` honoured either way."""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langgraph.store.base import GetOp, PutOp, TTLConfig
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chad_memory import InvalidInputError
from chad_memory.database import create_engine, get_session_factory
from chad_memory.integrations.langgraph import ChadMemoryStore

Factory = async_sessionmaker[AsyncSession]
TTL: TTLConfig = {"default_ttl": 10.0, "refresh_on_read": True}


@pytest.fixture
def store(session_factory: Factory) -> ChadMemoryStore:
    return ChadMemoryStore(session_factory, actor="alice")


async def _expire(factory: Factory, key: str) -> None:
    """Backdate an item's expiry without sweeping it."""
    async with factory() as session, session.begin():
        await session.execute(
            text("UPDATE store_items SET expires_at = now() - interval '1 minute' WHERE key = :k"),
            {"k": key},
        )


async def _expires_at(factory: Factory, key: str) -> Any:
    async with factory() as session:
        found = await session.execute(
            text("SELECT expires_at FROM store_items WHERE key = :k"), {"k": key}
        )
        return found.scalar_one()


async def test_sync_calls_from_ten_threads_at_once(session_factory: Factory) -> None:
    """A thread pool calling put/get/search/list_namespaces/delete, none of them with a
    loop: every call succeeds and all share one private loop thread."""
    store = ChadMemoryStore(session_factory, actor="alice")
    start = threading.Barrier(10)

    def client(n: int) -> list[Any]:
        start.wait(30)
        ns = ("test", "t", str(n))
        out: list[Any] = []
        for i in range(15):
            store.put(ns, f"key{i}", {"n": n, "i": i})
            out.append(store.get(ns, f"key{i}"))
            out.append(store.list_namespaces(prefix=("test",), max_depth=(i % 3) + 1))
            out.append(store.search(("test",), limit=5))
            if i % 3 == 0:
                store.delete(ns, f"key{i}")
        return out

    def run() -> list[list[Any]]:
        with ThreadPoolExecutor(max_workers=10) as pool:
            return list(pool.map(client, range(10)))

    results = await asyncio.to_thread(run)
    assert all(r[0] is not None for r in results)  # each thread reads back its first put
    assert sum(len(r) for r in results) == 10 * 15 * 3
    loops = [t for t in threading.enumerate() if t.name == "chad-memory-store"]
    assert store._private is not None
    assert len([t for t in loops if t.is_alive()]) >= 1
    assert store._loop is store._private.loop
    # Every thread's puts were written through that one loop.
    keys = {i.key for i in await store.asearch(("test",), limit=100)}
    assert keys == {f"key{i}" for i in range(15) if i % 3}


async def test_refresh_on_read_never_waits_for_a_row_lock(
    engine: AsyncEngine, session_factory: Factory
) -> None:
    """A row held by another transaction is read (not refreshed) at once: a read that
    waited for row locks could deadlock with another read locking in another order."""
    store = ChadMemoryStore(session_factory, actor="alice", ttl=TTL)
    await store.aput(("r",), "held", {"v": 1})
    await store.aput(("r",), "free", {"v": 2})
    before = await _expires_at(session_factory, "free")
    async with engine.connect() as holder:
        await holder.execute(text("SELECT 1 FROM store_items WHERE key = 'held' FOR UPDATE"))
        async with asyncio.timeout(10):
            got = await store.abatch(
                [GetOp(("r",), "held", refresh_ttl=True), GetOp(("r",), "free", refresh_ttl=True)]
            )
            found = await store.asearch(("r",), refresh_ttl=True)
        await holder.rollback()
    assert [getattr(g, "key", None) for g in got] == ["held", "free"]
    assert {i.key for i in found} == {"held", "free"}
    assert await _expires_at(session_factory, "free") > before


async def test_concurrent_refreshing_reads_in_opposite_orders(session_factory: Factory) -> None:
    """Batches of gets refreshing the same rows in shuffled orders, searches refreshing
    them and puts rewriting them, all at once: none deadlocks (40P01)."""
    store = ChadMemoryStore(session_factory, actor="alice", ttl=TTL)
    keys = [f"k{i}" for i in range(60)]
    await store.abatch([PutOp(("d",), k, {"k": k}) for k in keys])
    rng = random.Random(7)

    def shuffled() -> list[str]:
        order = list(keys)
        rng.shuffle(order)
        return order

    gets = [
        store.abatch([GetOp(("d",), k, refresh_ttl=True) for k in shuffled()]) for _ in range(30)
    ]
    searches = [store.asearch(("d",), limit=60, refresh_ttl=True) for _ in range(30)]
    puts = [store.abatch([PutOp(("d",), k, {"k": k}) for k in shuffled()[:10]]) for _ in range(10)]
    got, found, _ = await asyncio.gather(
        asyncio.gather(*gets), asyncio.gather(*searches), asyncio.gather(*puts)
    )
    assert all(item is not None for batch in got for item in batch)
    assert all(len(items) == 60 for items in found)


async def test_omit_expired_off_returns_expired_rows_until_swept(
    session_factory: Factory,
) -> None:
    """LangGraph's default (`omit_expired` unset or False): an expired item not yet swept
    is still read, searched and listed, and a refresh does not bring it back."""
    settings: list[TTLConfig] = [TTL, {**TTL, "omit_expired": False}]
    for ttl in settings:
        store = ChadMemoryStore(session_factory, actor="alice", ttl=ttl)
        await store.aput(("keep",), "k", {"data": "still here"})
        await _expire(session_factory, "k")
        before = await _expires_at(session_factory, "k")
        item = await store.aget(("keep",), "k", refresh_ttl=True)
        assert item is not None
        assert item.value == {"data": "still here"}
        assert [i.key for i in await store.asearch(("keep",), refresh_ttl=True)] == ["k"]
        assert ("keep",) in await store.alist_namespaces(prefix=("keep",))
        assert await _expires_at(session_factory, "k") == before
        assert await store.sweep_ttl() == 1
        assert await store.aget(("keep",), "k") is None


async def test_omit_expired_on_hides_expired_rows_at_once(session_factory: Factory) -> None:
    store = ChadMemoryStore(session_factory, actor="alice", ttl={**TTL, "omit_expired": True})
    await store.aput(("gone",), "e", {"v": 1})
    await store.aput(("kept",), "c", {"v": 2}, ttl=None)
    await _expire(session_factory, "e")
    assert await store.aget(("gone",), "e") is None
    assert await store.asearch(("gone",)) == []
    assert [i.key for i in await store.asearch(("kept",))] == ["c"]
    namespaces = await store.alist_namespaces()
    assert ("gone",) not in namespaces
    assert ("kept",) in namespaces


async def test_thousands_of_concurrent_calls_on_a_two_connection_pool(database_url: str) -> None:
    """As LangGraph's `test_large_batches_async`: single-op calls fired at once are run
    together per loop turn, so 3,000 of them fit through two connections well within
    the pool timeout instead of queueing for it one by one."""
    engine = create_engine(database_url, pool_size=2, max_overflow=0, pool_timeout=10)
    store = ChadMemoryStore(get_session_factory(engine), actor="alice", ttl=TTL)
    try:
        calls: list[Any] = []
        for i in range(500):
            ns = ("test", "foo", str(i % 2))
            calls += [
                store.aput(ns, f"key{i}", {"foo": f"bar{i}"}),
                store.aget(ns, f"key{i}"),
                store.alist_namespaces(prefix=None, max_depth=(i % 5) + 1),
                store.asearch(("test",)),
                store.aput(ns, f"key{i}", {"foo": f"bar{i}"}),
                store.adelete(ns, f"key{i}") if i % 2 else store.aget(ns, f"key{i}"),
            ]
        results = await asyncio.gather(*calls)
        assert len(results) == 3000
        assert len(await store.asearch(("test",), limit=1000)) == 250
    finally:
        await engine.dispose()


async def test_a_bad_call_fails_alone_among_concurrent_calls(store: ChadMemoryStore) -> None:
    """Calls merged into one batch: the one with a bad value gets InvalidInputError, the
    others their own results, and the good put is written."""
    good, bad, read = await asyncio.gather(
        store.aput(("m",), "good", {"v": 1}),
        store.aput(("m",), "bad", "not a dict"),  # type: ignore[arg-type]
        store.asearch(("m",)),
        return_exceptions=True,
    )
    assert good is None
    assert isinstance(bad, InvalidInputError)
    # The merged batch failed, so the calls ran one by one, in the order they were made.
    assert isinstance(read, list)
    assert [i.key for i in read] == ["good"]
    item = await store.aget(("m",), "good")
    assert item is not None
    assert item.value == {"v": 1}
    assert await store.aget(("m",), "bad") is None
