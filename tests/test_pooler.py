"""DB_POOLER=transaction: the library and the service through a real PgBouncer in
transaction mode (1.18: it tracks no prepared statements), with fewer server connections
than clients, so transactions of different clients share server connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from apps.core_api.main import create_app
from bench.pgbouncer import pgbouncer
from chad_memory import ApiKeyStore, PgVectorStore, PostgresStore
from chad_memory.database import Database, create_engine, get_session_factory
from chad_memory.errors import DirectConnectionRequiredError
from chad_memory.retention import SWEEPER_LOCK, sweep_once
from chad_memory.schemas import EmbeddingCreate, RunCreate
from chad_memory.settings import Settings

DIM = 1536


@pytest.fixture
def pooled_url(database_url: str) -> Iterator[str]:
    with pgbouncer(database_url, pool_mode="transaction", pool_size=2) as url:
        yield url


def _settings(**values: object) -> Settings:
    return Settings.model_validate({"auth_mode": "api_key", **values})


@pytest.mark.parametrize("pooler", ["none", "transaction"])
async def test_prepared_statements_move_servers_unless_the_setting_says_pooler(
    database_url: str, pooler: str
) -> None:
    """The control beside the rule. Client b prepares a statement on one server connection
    while client a holds the other; a then commits, and PgBouncer hands b the server a
    just released: with the default driver settings b's cached named statement is not
    there, with DB_POOLER=transaction nothing was named. (No statement_timeout either way:
    without the setting it would already fail at start-up, an unsupported parameter.)"""
    settings = _settings(db_pooler=pooler, db_statement_timeout_ms=0)
    query = text("SELECT count(*) FROM runs")
    with pgbouncer(database_url, pool_size=2) as two_servers:
        engine = create_engine(two_servers, settings, pool_size=2, max_overflow=0)

        async def take_turns() -> None:
            async with engine.connect() as a, engine.connect() as b:
                assert await a.scalar(text("SELECT 1")) == 1  # a's transaction holds one
                assert await b.scalar(query) == 0
                await b.commit()
                await a.commit()  # released last: PgBouncer hands it out next
                assert await b.scalar(query) == 0
                await b.commit()

        try:
            if pooler == "none":
                with pytest.raises(DBAPIError, match="prepared statement"):
                    await take_turns()
            else:
                await take_turns()
        finally:
            await engine.dispose()


@pytest.fixture
async def pooled_app(pooled_url: str, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = _settings(
        database_url=pooled_url, db_pooler="transaction", direct_database_url=database_url
    )
    engine = create_engine(pooled_url, settings, pool_size=16, max_overflow=0)
    db = Database(engine, settings)
    key = (await ApiKeyStore(db).create_key("alice")).secret
    app = create_app(database=db, settings=settings)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://t",
                headers={"Authorization": f"Bearer {key}"},
            ) as client,
        ):
            yield client
    finally:
        await db.dispose()
        await engine.dispose()


def _vector(seed: int) -> list[float]:
    return [((seed * 31 + i * 7) % 97 + 1) / 97 for i in range(DIM)]


async def _agent(client: httpx.AsyncClient, n: int) -> None:
    """One client's worth of the API: writes, reads, lists, stats, memory, analytics."""
    r = await client.post("/runs", json={"name": f"agent-{n % 3}", "tags": ["pooled"]})
    assert r.status_code == 201, r.text
    run = r.json()["id"]
    steps = [{"step_index": i, "name": f"s{i}", "input": {"i": i}} for i in range(5)]
    r = await client.post(f"/runs/{run}/steps", json=steps)
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/runs/{run}/llm-calls",
        json={
            "provider": "openai",
            "model": "gpt-4o-mini",
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "latency_ms": 12,
        },
    )
    assert r.status_code == 201, r.text
    r = await client.patch(f"/runs/{run}", json={"status": "succeeded", "result": {"n": n}})
    assert r.status_code == 200, r.text
    for path in (
        f"/runs/{run}",
        f"/runs/{run}/steps",
        f"/runs/{run}/llm-calls",
        f"/runs/{run}/stats",
        "/runs?limit=20&tag=pooled",
        "/analytics/usage?group_by=model",
    ):
        r = await client.get(path)
        assert r.status_code == 200, (path, r.text)
    r = await client.post(
        "/memory",
        json={"items": [{"namespace": "pool", "content": f"m{n}", "embedding": _vector(n)}]},
    )
    assert r.status_code in (200, 201), r.text
    r = await client.post(
        "/memory/search", json={"namespace": "pool", "embedding": _vector(n), "k": 3}
    )
    assert r.status_code == 200, r.text
    assert r.json()["items"], r.text


async def test_the_service_through_a_transaction_pooler(pooled_app: httpx.AsyncClient) -> None:
    """24 clients at once over 2 server connections: every answer 2xx, every write there."""
    await asyncio.gather(*(_agent(pooled_app, n) for n in range(24)))
    r = await pooled_app.get("/runs?limit=200&tag=pooled")
    assert r.status_code == 200
    assert r.json()["total"] == 24
    stats = [(await pooled_app.get(f"/runs/{run['id']}/stats")).json() for run in r.json()["items"]]
    assert {s["step_count"] for s in stats} == {5}


async def test_reindex_needs_a_direct_url_behind_a_transaction_pooler(
    pooled_url: str, database_url: str
) -> None:
    pooled_only = _settings(database_url=pooled_url, db_pooler="transaction")
    engine = create_engine(pooled_url, pooled_only, pool_size=2, max_overflow=0)
    try:
        store = PgVectorStore(Database(engine, pooled_only))
        with pytest.raises(DirectConnectionRequiredError, match="DIRECT_DATABASE_URL"):
            await store.reindex()
        with_direct = pooled_only.model_copy(update={"direct_database_url": database_url})
        db = Database(engine, with_direct)
        await PgVectorStore(db).add_embedding(
            EmbeddingCreate(content="x", embedding=_vector(1), namespace="n", actor="alice")
        )
        info = await PgVectorStore(db).reindex()
        assert info.name is not None
        await db.dispose()
    finally:
        await engine.dispose()


async def test_sweeper_lock_is_released_with_its_round(pooled_url: str, database_url: str) -> None:
    """Through the pooler, a round's lock ends with the round: a session-level lock would
    stay behind on whichever server connection took it."""
    settings = _settings(db_pooler="transaction")
    engine = create_engine(pooled_url, settings, pool_size=4, max_overflow=0)
    direct = create_async_engine(database_url, poolclass=NullPool)
    try:
        assert await sweep_once(engine, days=30)
        assert await sweep_once(engine, days=30)
        async with direct.connect() as conn:
            held = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND ((classid::bigint << 32) | objid::bigint) = :k"
                ),
                {"k": SWEEPER_LOCK},
            )
        assert held == 0
        # While one round holds it, another process's round skips.
        async with direct.connect() as conn, conn.begin():
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SWEEPER_LOCK})
            assert not await sweep_once(engine, days=30)
    finally:
        await engine.dispose()
        await direct.dispose()


async def test_library_store_through_the_pooler(pooled_url: str) -> None:
    """The documented constructor, `PostgresStore(get_session_factory(engine))`, with the
    pooler's engine settings: concurrent reads outside transactions and writes inside."""
    settings = _settings(db_pooler="transaction")
    engine = create_engine(pooled_url, settings, pool_size=8, max_overflow=0)
    try:
        store = PostgresStore(get_session_factory(engine))
        runs = await asyncio.gather(
            *(store.save_run(RunCreate(actor="bob", name=f"r{i}")) for i in range(16))
        )
        got = await asyncio.gather(*(store.get_run(r.id, actor="bob") for r in runs))
        assert {g.id for g in got} == {r.id for r in runs}
    finally:
        await engine.dispose()
