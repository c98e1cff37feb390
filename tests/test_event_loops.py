"""The library from any event loop and any thread: successive `asyncio.run` calls on the
default session factory, a sync LangChain chain traced then read back, several threads
at once; and a connection used on the wrong loop reported as a programming error."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chad_memory import EventLoopError, PostgresStore
from chad_memory.database import create_engine, get_session_factory
from chad_memory.errors import DatabaseUnavailableError
from chad_memory.loop_pools import LoopPool
from chad_memory.schemas import RunCreate, RunFilter


def run_script(database_url: str, script: str) -> str:
    """`script` in a fresh interpreter whose default database is the test database."""
    env = dict(os.environ, DATABASE_URL=database_url, LOG_LEVEL="warning")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_asyncio_runs_on_the_default_factory(database_url: str) -> None:
    out = run_script(
        database_url,
        """
        import asyncio
        from chad_memory import PostgresStore, get_session_factory
        from chad_memory.schemas import RunCreate, RunFilter

        store = PostgresStore(get_session_factory())

        async def save(name):
            await store.save_run(RunCreate(actor="alice", name=name))

        async def names():
            runs = (await store.list_runs(RunFilter(actor="alice"))).items
            return sorted(r.name for r in runs)

        asyncio.run(save("first"))
        asyncio.run(save("second"))
        print(asyncio.run(names()))
        """,
    )
    assert out.strip() == "['first', 'second']"


def test_sync_chain_traced_on_the_default_factory_then_read_back(database_url: str) -> None:
    """The default factory first used on one loop, then by the tracer's own loop thread,
    then read back with `asyncio.run`: every step on its own loop's connections."""
    out = run_script(
        database_url,
        """
        import asyncio
        from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
        from langchain_core.messages import AIMessage
        from langchain_core.runnables import RunnableLambda
        from chad_memory import PostgresStore, get_session_factory
        from chad_memory.integrations.langchain import ChadMemoryTracer
        from chad_memory.schemas import RunFilter

        store = PostgresStore(get_session_factory())
        before = asyncio.run(store.list_runs(RunFilter(actor="alice")))
        tracer = ChadMemoryTracer(PostgresStore(get_session_factory()), actor="alice")
        model = GenericFakeChatModel(messages=iter([AIMessage(content="hello there")]))
        chain = RunnableLambda(lambda q: q.upper(), name="shout") | model
        answer = chain.invoke("hi", config={"callbacks": [tracer]})
        tracer.flush(timeout=60)

        async def read():
            run = (await store.list_runs(RunFilter(actor="alice"))).items[0]
            steps = await store.get_steps(run.id)
            return run, steps

        run, steps = asyncio.run(read())
        print(len(before.items), tracer.failures, answer.content)
        print(run.status, [s.name for s in steps])
        """,
    )
    assert out.splitlines() == [
        "0 0 hello there",
        "succeeded ['shout', 'GenericFakeChatModel']",
    ]


async def test_several_threads_at_once_each_on_its_own_loop(database_url: str) -> None:
    """Eight threads, each running its own loop, share one store and engine; every loop's
    connections are closed when `asyncio.run` ends it."""
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    store = PostgresStore(get_session_factory(engine))
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        async def work() -> None:
            for i in range(5):
                await store.save_run(RunCreate(actor="threads", name=f"t{n}-{i}"))
                await store.list_runs(RunFilter(actor="threads"), limit=5)

        try:
            start.wait(30)
            asyncio.run(work())
        except BaseException as exc:  # reported below, with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]

    def run_all() -> None:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)

    await asyncio.to_thread(run_all)
    assert errors == []
    assert len((await store.list_runs(RunFilter(actor="threads"), limit=100)).items) == 40
    pool = engine.pool
    assert isinstance(pool, LoopPool)
    # Only this test's own loop still has a pool: the threads' loops closed theirs.
    assert pool.checkedout() == 0
    async with engine.connect() as conn:
        open_now = await conn.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        )
    assert open_now == 1  # the connection asking
    await engine.dispose()


def test_a_connection_used_on_another_loop_is_a_programming_error(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An engine made without the per-loop pool, shared by two `asyncio.run` calls:
    EventLoopError at once (no retries, not "database unavailable"), and the broken
    connection is dropped so the next call works."""
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0)
    store = PostgresStore(get_session_factory(engine))

    async def count() -> Any:
        return len((await store.list_runs(RunFilter(actor="alice"))).items)

    assert asyncio.run(count()) == 0
    caplog.set_level(logging.WARNING, logger="chad_memory.stores.transactions")
    with pytest.raises(EventLoopError) as failure:
        asyncio.run(count())
    assert not isinstance(failure.value, DatabaseUnavailableError)
    assert not failure.value.retryable
    assert "retrying" not in caplog.text
    assert asyncio.run(count()) == 0
