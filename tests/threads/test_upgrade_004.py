"""Revision 004 on a database that already holds runs: nothing is lost, up or down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from chad_memory.migrations import downgrade, upgrade
from tests.database import run_admin, unique_name, with_database

SHARED = uuid.UUID("00000000-0000-4000-8000-00000000000a")  # named by two actors' runs
LONE = uuid.UUID("00000000-0000-4000-8000-00000000000b")


@pytest.fixture
async def db_at_003(admin_url: str) -> AsyncIterator[str]:
    name = unique_name("chad_up004")
    await run_admin(admin_url, f'CREATE DATABASE "{name}"')
    url = with_database(admin_url, name)
    await asyncio.to_thread(upgrade, url, "003")
    yield url
    await run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _sql(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def _runs(url: str) -> dict[str, uuid.UUID | None]:
    return dict(await _sql(url, "SELECT name, thread_id FROM runs"))


async def test_upgrade_keeps_runs_with_dangling_thread_ids(db_at_003: str) -> None:
    url = db_at_003
    await _sql(
        url,
        """
        INSERT INTO runs (id, actor, name, agent, thread_id, created_at, updated_at) VALUES
          (gen_random_uuid(), 'alice', 'a1', 'planner', :shared, '2026-01-01Z', '2026-01-01Z'),
          (gen_random_uuid(), 'bob',   'b1', 'coder',   :shared, '2026-01-02Z', '2026-01-05Z'),
          (gen_random_uuid(), 'bob',   'b2', NULL,      :lone,   '2026-01-03Z', '2026-01-03Z'),
          (gen_random_uuid(), 'carol', 'c1', NULL,      NULL,    '2026-01-04Z', '2026-01-04Z')
        """,
        shared=SHARED,
        lone=LONE,
    )
    before = await _runs(url)

    await asyncio.to_thread(upgrade, url, "head")

    assert await _runs(url) == before, "every run kept, with its thread_id"
    threads = {
        row[0]: row[1:]
        for row in await _sql(
            url,
            "SELECT id, actor, agent_type, title, metadata, created_at, updated_at FROM threads",
        )
    }
    assert set(threads) == {SHARED, LONE}
    actor, agent_type, title, metadata, created, updated = threads[SHARED]
    # Owned by the earliest run's actor; spans every run that named it.
    assert (actor, agent_type, title) == ("alice", "planner", "Recovered thread")
    assert metadata == {"placeholder": True, "created_by": "migration 004"}
    assert (created.day, updated.day) == (1, 5)
    assert threads[LONE][:2] == ("bob", "unknown")

    # The link is now a real foreign key...
    with pytest.raises(IntegrityError, match="fk_runs_thread_id_threads"):
        await _sql(
            url,
            "INSERT INTO runs (id, actor, thread_id) VALUES (gen_random_uuid(), 'x', :t)",
            t=uuid.uuid4(),
        )
    # ...and deleting a thread keeps its runs, unlinked.
    await _sql(url, "DELETE FROM threads WHERE id = :t", t=LONE)
    assert (await _runs(url))["b2"] is None

    await asyncio.to_thread(downgrade, url, "003")

    after = await _runs(url)
    assert after == {**before, "b2": None}
    tables = {r[0] for r in await _sql(url, "SELECT tablename FROM pg_tables")}
    assert not {"threads", "messages"} & tables
    # Back at 003 thread_id is a plain uuid again: any value is accepted.
    await _sql(
        url,
        "INSERT INTO runs (id, actor, thread_id) VALUES (gen_random_uuid(), 'x', :t)",
        t=uuid.uuid4(),
    )
    # And up again: the dangling ids get their placeholders back.
    await asyncio.to_thread(upgrade, url, "head")
    assert len(await _sql(url, "SELECT id FROM threads")) == 2
