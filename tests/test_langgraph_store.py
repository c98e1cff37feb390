"""ChadMemoryStore against LangGraph's BaseStore semantics, on a real pgvector.

Modelled on the behaviours LangGraph's own store tests check (batch order, upsert,
delete, filters, namespace listing, TTL, search with and without a query), plus what
chad-memory adds: actor isolation, numbers compared as numbers, one statement per batch
of puts.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    PutOp,
    SearchOp,
)
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from chad_memory import InvalidInputError, PgVectorStore
from chad_memory.database import create_engine, get_session_factory
from chad_memory.integrations.langgraph import ChadMemoryStore, sweep_expired_items
from tests.langgraph_support import DIM, embed_texts, index_config

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
def store(session_factory: Factory) -> ChadMemoryStore:
    return ChadMemoryStore(session_factory, actor="alice", index=index_config())


async def _scalar(factory: Factory, sql: str, **params: Any) -> Any:
    async with factory() as session:
        return (await session.execute(text(sql), params)).scalar_one()


async def test_abatch_keeps_op_order_and_reads_before_writes(store: ChadMemoryStore) -> None:
    await store.aput(("test", "foo"), "key1", {"data": "value1"})
    await store.aput(("test", "bar"), "key2", {"data": "value2"})
    results = await store.abatch(
        [
            SearchOp(("test",), limit=5),
            GetOp(("test", "foo"), "key1"),
            ListNamespacesOp(limit=10),
            PutOp(("test",), "key3", {"data": "value3"}),
            GetOp(("test",), "key3"),
            SearchOp(("test",), filter={"data": "value1"}),
        ]
    )
    assert len(results) == 6
    assert isinstance(results[0], list)
    assert len(results[0]) == 2
    assert isinstance(results[1], Item)
    assert results[1].value == {"data": "value1"}
    assert results[2] == [("test", "bar"), ("test", "foo")]
    assert results[3] is None
    assert results[4] is None  # read before the batch's put
    assert isinstance(results[5], list)
    assert [i.key for i in results[5] if isinstance(i, Item)] == ["key1"]
    assert (await store.aget(("test",), "key3")) is not None


async def test_put_upserts_and_none_deletes(
    store: ChadMemoryStore, session_factory: Factory
) -> None:
    await store.aput(("docs",), "a", {"text": "red apples"})
    first = await store.aget(("docs",), "a")
    assert first is not None
    assert first.value == {"text": "red apples"}
    await asyncio.sleep(0.01)
    await store.aput(("docs",), "a", {"text": "green pears"})
    second = await store.aget(("docs",), "a")
    assert second is not None
    assert second.value == {"text": "green pears"}
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert await _scalar(session_factory, "SELECT count(*) FROM store_items") == 1
    # The re-put replaced the vector: one row, holding the new text.
    assert (
        await _scalar(session_factory, "SELECT string_agg(content, ',') FROM embeddings")
        == '{"text": "green pears"}'
    )

    await store.adelete(("docs",), "a")
    assert await store.aget(("docs",), "a") is None
    assert await _scalar(session_factory, "SELECT count(*) FROM store_items") == 0
    assert await _scalar(session_factory, "SELECT count(*) FROM embeddings") == 0


async def test_last_put_of_a_key_in_a_batch_wins(store: ChadMemoryStore) -> None:
    await store.abatch(
        [
            PutOp(("n",), "k", {"v": 1}),
            PutOp(("n",), "k", {"v": 2}),
            PutOp(("n",), "gone", {"v": 1}),
            PutOp(("n",), "gone", None),
        ]
    )
    item = await store.aget(("n",), "k")
    assert item is not None
    assert item.value == {"v": 2}
    assert await store.aget(("n",), "gone") is None


async def test_a_batch_of_puts_is_one_statement(engine: AsyncEngine) -> None:
    statements: list[str] = []

    def log(record: Any) -> None:
        statements.append(record.query)

    @event.listens_for(engine.sync_engine, "connect")
    def _attach(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(log)

    store = ChadMemoryStore(get_session_factory(engine), actor="alice", index=index_config())
    await store.abatch([PutOp(("bulk", str(i % 3)), f"k{i}", {"n": i}) for i in range(300)])
    touching = [s for s in statements if "store_items" in s]
    assert len(touching) == 1
    assert len(await store.asearch(("bulk",), limit=1000)) == 300


async def test_invalid_input_is_refused_and_writes_nothing(
    store: ChadMemoryStore, session_factory: Factory
) -> None:
    for namespace in [(), ("a.b",), ("",), ("langgraph", "x")]:
        with pytest.raises(InvalidNamespaceError):
            await store.abatch([PutOp(("ok",), "k", {"v": 1}), PutOp(namespace, "k", {"v": 1})])
    with pytest.raises(InvalidNamespaceError):
        await store.abatch([PutOp(("ok", 1), "k", {"v": 1})])  # type: ignore[arg-type]
    bad_puts: list[PutOp] = [
        PutOp(("ok",), "k", ["not", "a", "dict"]),  # type: ignore[arg-type]
        PutOp(("ok",), "", {"v": 1}),
        PutOp(("ok",), "k", {"v": float("nan")}),
        PutOp(("ok",), "k", {"v": "nul\x00"}),
        PutOp(("ok",), "k", {"v": 1}, ttl=-1),
        PutOp(("ok",), "k", {"v": 1}, index="text"),  # type: ignore[arg-type]
    ]
    for op in bad_puts:
        with pytest.raises(InvalidInputError):
            await store.abatch([PutOp(("ok",), "first", {"v": 1}), op])
    assert await _scalar(session_factory, "SELECT count(*) FROM store_items") == 0
    with pytest.raises(InvalidInputError):
        await store.asearch(("ok",), limit=-1)
    with pytest.raises(InvalidInputError):
        await store.asearch(("ok",), filter={"v": {"$regex": "x"}})
    with pytest.raises(InvalidInputError):
        await store.asearch(("ok",), filter={"v": {"$gt": [1]}})
    with pytest.raises(InvalidInputError):
        await store.alist_namespaces(max_depth=0)
    with pytest.raises(InvalidInputError, match="dims"):
        ChadMemoryStore(session_factory, actor="a", index={"dims": DIM + 1, "embed": embed_texts})
    with pytest.raises(InvalidInputError):
        ChadMemoryStore(session_factory, actor="")


@pytest.fixture
async def scored(store: ChadMemoryStore) -> ChadMemoryStore:
    rows: list[dict[str, Any]] = [
        {"score": 9, "name": "nine", "tag": "a"},
        {"score": 10, "name": "ten", "tag": "a"},
        {"score": 2.5, "name": "two and a half", "tag": "b"},
        {"score": "11", "name": "text eleven", "tag": "b"},
        {"name": "no score", "tag": "c"},
    ]
    await store.abatch([PutOp(("scores",), str(i), row) for i, row in enumerate(rows)])
    return store


async def _names(store: ChadMemoryStore, filter: dict[str, Any]) -> set[str]:
    return {i.value["name"] for i in await store.asearch(("scores",), filter=filter, limit=100)}


async def test_ordering_filters_compare_numbers_as_numbers(scored: ChadMemoryStore) -> None:
    # LangGraph's Postgres store compares the text here, where "10" < "9".
    assert await _names(scored, {"score": {"$gt": 9}}) == {"ten"}
    assert await _names(scored, {"score": {"$gte": 9}}) == {"nine", "ten"}
    assert await _names(scored, {"score": {"$lt": 9}}) == {"two and a half"}
    assert await _names(scored, {"score": {"$lte": 10}}) == {"nine", "ten", "two and a half"}
    assert await _names(scored, {"score": {"$gt": 2, "$lt": 10}}) == {"nine", "two and a half"}
    # Strings compare with strings only.
    assert await _names(scored, {"score": {"$gt": "1"}}) == {"text eleven"}
    assert await _names(scored, {"name": {"$lt": "nine"}}) == set()


async def test_equality_filters(scored: ChadMemoryStore) -> None:
    assert await _names(scored, {"tag": "a"}) == {"nine", "ten"}
    assert await _names(scored, {"tag": {"$eq": "b"}}) == {"two and a half", "text eleven"}
    assert await _names(scored, {"score": 10}) == {"ten"}
    assert await _names(scored, {"score": "11"}) == {"text eleven"}
    assert await _names(scored, {"score": 11}) == set()
    assert await _names(scored, {"tag": "a", "score": 9}) == {"nine"}
    # $ne keeps items without the key, as LangGraph's InMemoryStore does.
    assert await _names(scored, {"tag": {"$ne": "a"}}) == {
        "two and a half",
        "text eleven",
        "no score",
    }
    assert await _names(scored, {"score": {"$ne": 9}}) == {
        "ten",
        "two and a half",
        "text eleven",
        "no score",
    }


async def test_search_without_query_newest_first_with_limit_offset(store: ChadMemoryStore) -> None:
    for i in range(5):
        await store.aput(("feed", "x"), f"k{i}", {"i": i})
    await store.aput(("feedback",), "other", {"i": 99})  # not under ("feed",)
    found = await store.asearch(("feed",), limit=3)
    assert [i.key for i in found] == ["k4", "k3", "k2"]
    assert all(i.score is None for i in found)
    assert [i.key for i in await store.asearch(("feed",), limit=3, offset=3)] == ["k1", "k0"]
    assert len(await store.asearch((), limit=100)) == 6


async def test_namespace_labels_with_like_characters_match_literally(
    store: ChadMemoryStore,
) -> None:
    await store.aput(("user_1",), "k", {"v": 1})
    await store.aput(("userX1",), "k", {"v": 2})
    await store.aput(("user_1", "deep"), "k", {"v": 3})
    found = await store.asearch(("user_1",), limit=10)
    assert sorted(i.value["v"] for i in found) == [1, 3]


async def test_query_search_scores_best_first(store: ChadMemoryStore) -> None:
    docs = {
        "fruit": "apples and pears are fruit",
        "code": "python code compiles quickly",
        "cars": "red cars drive fast",
    }
    for key, body in docs.items():
        await store.aput(("docs",), key, {"text": body})
    found = await store.asearch(("docs",), query="which fruit: apples or pears", limit=3)
    assert next(i.key for i in found) == "fruit"
    scores = [i.score for i in found]
    assert all(s is not None for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    top_only = await store.asearch(("docs",), query="python code", limit=1)
    assert [i.key for i in top_only] == ["code"]
    assert [
        i.key for i in await store.asearch(("docs",), query="python code", limit=1, offset=1)
    ] != ["code"]
    filtered = await store.asearch(("docs",), query="python code", filter={"text": docs["cars"]})
    assert [i.key for i in filtered] == ["cars"]


async def test_fields_and_index_false(session_factory: Factory) -> None:
    store = ChadMemoryStore(
        session_factory,
        actor="alice",
        index=index_config(fields=["title", "tags[*]"]),
    )
    await store.aput(
        ("m",), "a", {"title": "ocean tides", "tags": ["moon", "water"], "body": "zebra"}
    )
    await store.aput(("m",), "b", {"title": "desert sand", "tags": ["sun"], "body": "ocean"})
    # "body" is not embedded: a query for zebra finds "a" by nothing it holds.
    found = await store.asearch(("m",), query="ocean tides")
    assert found[0].key == "a"
    assert (await store.asearch(("m",), query="moon"))[0].key == "a"
    # Per-put fields override the config.
    await store.aput(("m",), "c", {"title": "x", "body": "giraffe neck"}, index=["body"])
    assert (await store.asearch(("m",), query="giraffe neck"))[0].key == "c"
    # index=False: stored and filterable, never found by query; an old vector is dropped.
    await store.aput(("m",), "a", {"title": "ocean tides", "tags": []}, index=False)
    assert "a" not in [i.key for i in await store.asearch(("m",), query="ocean tides")]
    assert (await store.aget(("m",), "a")) is not None
    assert [i.key for i in await store.asearch(("m",), filter={"title": "ocean tides"})] == ["a"]


async def test_index_path_agrees_with_exact_path(session_factory: Factory) -> None:
    """exact_scan_max_rows=1 forces the vector-index plan (HNSW walk joined to the items)."""
    await PgVectorStore(session_factory).reindex(method="hnsw")
    exact = ChadMemoryStore(session_factory, actor="alice", index=index_config())
    indexed = ChadMemoryStore(
        session_factory,
        actor="alice",
        index=index_config(),
        exact_scan_max_rows=1,
    )
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    await exact.abatch(
        [
            PutOp(
                ("w", str(i % 2)), f"k{i}", {"text": f"{words[i % 8]} {words[(i * 3) % 8]}", "i": i}
            )
            for i in range(40)
        ]
    )
    for query, flt in [("alpha gamma", None), ("omega", {"i": {"$gte": 10}})]:
        a = await exact.asearch(("w",), query=query, filter=flt, limit=5)
        b = await indexed.asearch(("w",), query=query, filter=flt, limit=5)
        assert [round(i.score or 0, 5) for i in a] == [round(i.score or 0, 5) for i in b]
        assert len(a) == 5
        if flt:
            assert all(i.value["i"] >= 10 for i in b)


async def test_list_namespaces(store: ChadMemoryStore) -> None:
    for ns in [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
        ("users", "123"),
        ("users", "456", "settings"),
    ]:
        await store.aput(ns, "k", {"v": 1})
    assert len(await store.alist_namespaces()) == 8
    assert await store.alist_namespaces(prefix=("a", "b")) == [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
    ]
    assert await store.alist_namespaces(suffix=("f",)) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    assert await store.alist_namespaces(prefix=("a", "*", "f")) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
    ]
    assert await store.alist_namespaces(suffix=("*", "f")) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    assert await store.alist_namespaces(prefix=("a",), max_depth=2) == [("a", "b"), ("a", "c")]
    assert await store.alist_namespaces(prefix=("a", "b"), suffix=("e",)) == [("a", "b", "d", "e")]
    assert await store.alist_namespaces(prefix=("users",), max_depth=2) == [
        ("users", "123"),
        ("users", "456"),
    ]
    assert await store.alist_namespaces(prefix=("nope",)) == []
    page = await store.alist_namespaces(limit=3, offset=2)
    assert page == (await store.alist_namespaces())[2:5]


async def test_actors_never_see_each_other(session_factory: Factory) -> None:
    index = index_config()
    alice = ChadMemoryStore(session_factory, actor="alice", index=index)
    bob = ChadMemoryStore(session_factory, actor="bob", index=index)
    await alice.aput(("prefs",), "theme", {"text": "dark mode please"})
    await bob.aput(("prefs",), "theme", {"text": "light mode"})
    await bob.aput(("bob-only",), "k", {"text": "dark secrets"})
    got = await alice.aget(("prefs",), "theme")
    assert got is not None
    assert got.value == {"text": "dark mode please"}
    assert [i.value for i in await alice.asearch(("prefs",), query="dark")] == [
        {"text": "dark mode please"}
    ]
    assert [i.key for i in await alice.asearch((), query="dark secrets", limit=10)] == ["theme"]
    assert await alice.alist_namespaces() == [("prefs",)]
    await alice.adelete(("prefs",), "theme")
    bobs = await bob.aget(("prefs",), "theme")
    assert bobs is not None
    assert bobs.value == {"text": "light mode"}
    assert len(await bob.asearch(("bob-only",), query="dark secrets")) == 1


async def test_ttl_expiry_refresh_and_sweep(session_factory: Factory) -> None:
    store = ChadMemoryStore(
        session_factory,
        actor="alice",
        index=index_config(),
        ttl={"default_ttl": 10, "refresh_on_read": True, "omit_expired": True},
    )

    async def expires(key: str) -> Any:
        return await _scalar(
            session_factory, "SELECT expires_at FROM store_items WHERE key = :k", k=key
        )

    await store.aput(("t",), "kept", {"text": "kept"})
    await store.aput(("t",), "forever", {"text": "forever"}, ttl=None)
    assert await expires("forever") is None
    before = await expires("kept")
    await asyncio.sleep(0.05)
    await store.aget(("t",), "kept", refresh_ttl=False)
    assert await expires("kept") == before
    await store.aget(("t",), "kept")  # refresh_on_read
    after_get = await expires("kept")
    assert after_get > before
    await asyncio.sleep(0.05)
    await store.asearch(("t",), query="kept")
    assert await expires("kept") > after_get

    await store.aput(("t",), "brief", {"text": "brief"}, ttl=0.002)  # 0.12 s
    assert await store.aget(("t",), "brief") is not None
    await asyncio.sleep(0.3)
    assert await store.aget(("t",), "brief") is None
    assert "brief" not in [i.key for i in await store.asearch(("t",), limit=10)]
    assert "brief" not in [i.key for i in await store.asearch(("t",), query="brief", limit=10)]
    assert await _scalar(session_factory, "SELECT count(*) FROM store_items") == 3
    assert await store.sweep_ttl() == 1
    assert await _scalar(session_factory, "SELECT count(*) FROM store_items") == 2
    assert await _scalar(session_factory, "SELECT count(*) FROM embeddings") == 2


async def test_ttl_sweeper_runs_and_stops(session_factory: Factory) -> None:
    alice = ChadMemoryStore(session_factory, actor="alice", ttl={"sweep_interval_minutes": 1})
    bob = ChadMemoryStore(session_factory, actor="bob")
    await alice.aput(("t",), "brief", {"v": 1}, ttl=0.001)
    await bob.aput(("t",), "brief", {"v": 1}, ttl=0.001)
    await asyncio.sleep(0.1)
    task = await alice.start_ttl_sweeper(sweep_interval_minutes=0.002)
    assert await alice.start_ttl_sweeper() is task
    for _ in range(50):
        await asyncio.sleep(0.05)
        left = await _scalar(
            session_factory, "SELECT count(*) FROM store_items WHERE actor = 'alice'"
        )
        if left == 0:
            break
    assert left == 0
    # Alice's sweeper leaves Bob's rows alone; an operator's sweep takes every actor's.
    assert await _scalar(session_factory, "SELECT count(*) FROM store_items") == 1
    assert await alice.stop_ttl_sweeper(timeout=5)
    assert task.done()
    assert await sweep_expired_items(session_factory) == 1


async def test_sync_methods_run_on_the_stores_loop_from_worker_threads(
    store: ChadMemoryStore,
) -> None:
    await store.aput(("s",), "a", {"v": 1})
    with pytest.raises(asyncio.InvalidStateError):
        store.get(("s",), "a")

    def worker() -> Any:
        store.put(("s",), "b", {"v": 2})
        return store.get(("s",), "b"), store.search(("s",)), store.list_namespaces()

    item, found, namespaces = await asyncio.to_thread(worker)
    assert item is not None
    assert item.value == {"v": 2}
    assert {i.key for i in found} == {"a", "b"}
    assert namespaces == [("s",)]


async def test_text_vectors_without_the_binary_codec(database_url: str) -> None:
    """An engine without chad-memory's codec (a plain SQLAlchemy engine) still works."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        store = ChadMemoryStore(
            get_session_factory(engine),
            actor="alice",
            index=index_config(fields=["text"]),
        )
        await store.aput(("d",), "a", {"text": "plain text vectors"})
        await store.aput(("d",), "b", {"text": "something else"})
        found = await store.asearch(("d",), query="plain text vectors")
        assert found[0].key == "a"
        assert found[0].score == pytest.approx(1.0, abs=1e-5)
    finally:
        await engine.dispose()


async def test_concurrent_puts_of_one_key_leave_one_set_of_vectors(
    store: ChadMemoryStore, session_factory: Factory
) -> None:
    """Each put replaces the key's vectors; racing puts must not leave a loser's behind."""
    for _ in range(3):
        await asyncio.gather(
            *(store.aput(("race",), "k", {"text": f"version {n}"}) for n in range(8))
        )
        assert await _scalar(session_factory, "SELECT count(*) FROM embeddings") == 1
        item = await store.aget(("race",), "k")
        assert item is not None
        content = await _scalar(session_factory, "SELECT content FROM embeddings")
        assert content == json.dumps(item.value)


async def test_a_reindex_elsewhere_is_planned_for_on_the_next_search(
    engine: AsyncEngine, database_url: str
) -> None:
    """The preparing statement names the index in use, as PgVectorStore.search's does: a
    rebuild by another process is searched with its own setting at once."""
    store = ChadMemoryStore(
        get_session_factory(engine), actor="alice", index=index_config(), exact_scan_max_rows=1
    )
    await store.abatch([PutOp(("w",), f"k{i}", {"text": f"word{i} alpha"}) for i in range(30)])
    assert len(await store.asearch(("w",), query="alpha", limit=3)) == 3  # learns the index
    other = create_engine(database_url, pool_size=1)
    try:
        await PgVectorStore(get_session_factory(other)).reindex(method="hnsw")
    finally:
        await other.dispose()
    assert len(await store.asearch(("w",), query="alpha", limit=3)) == 3
    # The search planned with the index it found in place: HNSW, with its setting.
    seen = store._vectors.known_index
    assert seen is not None
    assert seen.method == "hnsw"
    assert "hnsw.ef_search" in store._vectors.plan(seen, 10)[1]
