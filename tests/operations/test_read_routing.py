"""Replica-first reads without a real standby: a lagging replica is an older copy of the data."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory import ForbiddenError, PostgresStore, RunCreate, RunFilter
from chad_memory.database import Database, RetryPolicy, create_engine
from chad_memory.replicas import ReplicaState, RunReads
from chad_memory.settings import get_settings
from tests.database import run_admin, unique_name, with_database


@pytest.fixture
async def lagging(admin_url: str, template_db: str) -> AsyncIterator[AsyncEngine]:
    name = unique_name("chad_replica")
    await run_admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    eng = create_engine(with_database(admin_url, name), pool_size=2, max_overflow=0)
    yield eng
    await eng.dispose()
    await run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_rows_the_replica_lacks_come_from_the_primary(
    store: PostgresStore, lagging: AsyncEngine
) -> None:
    once = RetryPolicy(attempts=1)
    replica = PostgresStore(Database(lagging, get_settings(), retry_policy=once))
    state = ReplicaState(cooldown_s=60)
    routed = RunReads(store, replica, state)
    run = await store.save_run(RunCreate(actor="alice", name="fresh"))

    # The lagging copy has no such run: the primary answers instead of a 404.
    assert (await routed.get_run(run.id, actor="alice")).name == "fresh"
    assert state.fallbacks == 1
    assert state.available  # lag is not an outage
    # A list is answered by the replica as it stands (empty here): lag, not an error.
    assert (await routed.list_runs(RunFilter(actor="alice"))).items == []
    assert state.fallbacks == 1
    # Another actor's run is refused by the primary too: routing never widens access.
    with pytest.raises(ForbiddenError):
        await routed.get_run(run.id, actor="mallory")


async def test_an_unreachable_replica_sends_reads_to_the_primary_for_a_while(
    store: PostgresStore,
) -> None:
    dead = create_engine(
        "postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_size=1, max_overflow=0
    )
    try:
        once = RetryPolicy(attempts=1)
        replica = PostgresStore(Database(dead, get_settings(), retry_policy=once))
        state = ReplicaState(cooldown_s=60)
        routed = RunReads(store, replica, state)
        run = await store.save_run(RunCreate(actor="alice", name="up"))
        assert (await routed.get_run(run.id, actor="alice")).name == "up"
        assert not state.available
        assert (await routed.list_runs(RunFilter(actor="alice"))).items[0].id == run.id
        assert state.fallbacks == 2
    finally:
        await dead.dispose()
