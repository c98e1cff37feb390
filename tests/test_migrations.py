"""Migrations are the schema: they walk up and down, and agree with the models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from chad_memory.migrations import alembic_config, downgrade, upgrade
from chad_memory.models import Base
from tests.database import run_admin, unique_name, with_database

TABLES = {"runs", "steps", "artifacts", "llm_calls", "embeddings"}


@pytest.fixture
async def empty_db(admin_url: str) -> AsyncIterator[str]:
    name = unique_name("chad_mig")
    await run_admin(admin_url, f'CREATE DATABASE "{name}"')
    yield with_database(admin_url, name)
    await run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _scalar_rows(url: str, sql: str) -> set[Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return set((await conn.execute(text(sql))).scalars())
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    return await _scalar_rows(
        url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    ) - {"alembic_version"}


async def test_upgrade_downgrade_upgrade(empty_db: str) -> None:
    await asyncio.to_thread(upgrade, empty_db)
    assert await _tables(empty_db) >= TABLES
    indexes = await _scalar_rows(empty_db, "SELECT indexname FROM pg_indexes")
    assert {"ix_embeddings_embedding_ivfflat", "uq_runs_actor_idempotency_key"} <= indexes

    await asyncio.to_thread(downgrade, empty_db, "base")
    assert await _tables(empty_db) == set()

    await asyncio.to_thread(upgrade, empty_db)
    assert await _tables(empty_db) >= TABLES


async def test_each_revision_walks_down_and_up(empty_db: str) -> None:
    """Every revision's downgrade undoes its upgrade, one step at a time."""
    script = ScriptDirectory.from_config(alembic_config(empty_db))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for rev in revisions:
        await asyncio.to_thread(upgrade, empty_db, rev)
        await asyncio.to_thread(downgrade, empty_db, "-1")
        await asyncio.to_thread(upgrade, empty_db, rev)
    assert await _scalar_rows(empty_db, "SELECT version_num FROM alembic_version") == {
        script.get_current_head()
    }


def test_files_on_disk_are_in_chain_order() -> None:
    """A maintainer reads versions/ top to bottom: the NNN_ prefix is the chain position,
    and revisions from 011 on use the file's stem as their id (older ids are recorded in
    deployed databases and stay as they are)."""
    script = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://unused/x"))
    chain = list(reversed(list(script.walk_revisions())))
    assert len(script.get_heads()) == 1, script.get_heads()
    names = [Path(r.path).name for r in chain]
    assert names == sorted(names)
    for position, rev in enumerate(chain, start=1):
        stem = Path(rev.path).stem
        assert stem.startswith(f"{position:03d}_"), (stem, position)
        if position >= 11:
            assert rev.revision == stem, (rev.revision, stem)


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_migrated_database(database_url: str) -> None:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
    finally:
        await engine.dispose()
    assert diff == []


async def test_010_marks_reported_costs_and_its_downgrade_keeps_them(empty_db: str) -> None:
    await asyncio.to_thread(upgrade, empty_db, "007")
    engine = create_async_engine(empty_db, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO runs (id, actor, status) VALUES "
                    "('00000000-0000-0000-0000-000000000001', 'alice', 'running')"
                )
            )
            # As the OTLP path stored a span's own cost before revision 010: no source.
            await conn.execute(
                text(
                    "INSERT INTO llm_calls (id, run_id, model, cost_usd, cost_source) VALUES "
                    "('00000000-0000-0000-0000-00000000000a', "
                    "'00000000-0000-0000-0000-000000000001', 'm', 0.25, NULL), "
                    "('00000000-0000-0000-0000-00000000000b', "
                    "'00000000-0000-0000-0000-000000000001', 'm', NULL, NULL), "
                    "('00000000-0000-0000-0000-00000000000c', "
                    "'00000000-0000-0000-0000-000000000001', 'm', 0.5, 'table')"
                )
            )
    finally:
        await engine.dispose()
    sources = "SELECT right(id::text, 1) || ':' || coalesce(cost_source, '-') FROM llm_calls"

    await asyncio.to_thread(upgrade, empty_db, "010")
    assert await _scalar_rows(empty_db, sources) == {"a:client", "b:-", "c:table"}
    await asyncio.to_thread(downgrade, empty_db, "007")
    assert await _scalar_rows(empty_db, sources) == {"a:client", "b:-", "c:table"}
