"""Revisions 011 and 012 keep every row: twins written before 011 stay (the newest of
each gets the content hash), existing memories are valid from their created_at, and
each downgrade keeps every row or refuses, changing nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from chad_memory.migrations import downgrade, upgrade
from chad_memory.settings import get_settings
from tests.database import run_admin, unique_name, with_database

DIM = get_settings().embedding_dim
VECTOR = "[" + ",".join(["1"] + ["0"] * (DIM - 1)) + "]"


@pytest.fixture
async def empty_db(admin_url: str) -> AsyncIterator[str]:
    name = unique_name("chad_mig_mem")
    await run_admin(admin_url, f'CREATE DATABASE "{name}"')
    yield with_database(admin_url, name)
    await run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _sql(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql))
            return [tuple(r) for r in result.all()] if result.returns_rows else []
    finally:
        await engine.dispose()


async def test_011_keeps_twins_and_hashes_the_newest(empty_db: str) -> None:
    await asyncio.to_thread(upgrade, empty_db, "010")
    await _sql(
        empty_db,
        "INSERT INTO embeddings (id, actor, namespace, content, source_type, embedding, "
        "created_at) VALUES "
        f"('00000000-0000-0000-0000-000000000001', 'a', 'n', 'same', NULL, '{VECTOR}', "
        "now() - interval '2 days'), "
        f"('00000000-0000-0000-0000-000000000002', 'a', 'n', 'same', NULL, '{VECTOR}', now()), "
        f"('00000000-0000-0000-0000-000000000003', 'a', 'n', 'same', 'langgraph_store', "
        f"'{VECTOR}', now()), "
        f"('00000000-0000-0000-0000-000000000004', 'a', 'n', NULL, NULL, '{VECTOR}', now()) "
        "RETURNING id",
    )
    await asyncio.to_thread(upgrade, empty_db, "012_memory_in_words")
    hashed = await _sql(
        empty_db,
        "SELECT right(id::text, 1), content_hash = sha256('same'::bytea) FROM embeddings "
        "ORDER BY id",
    )
    assert hashed == [("1", None), ("2", True), ("3", None), ("4", None)]
    await asyncio.to_thread(downgrade, empty_db, "010")
    left = await _sql(empty_db, "SELECT right(id::text, 1) FROM embeddings ORDER BY id")
    assert left == [("1",), ("2",), ("3",), ("4",)]
    columns = await _sql(
        empty_db,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'embeddings' "
        "AND column_name IN ('content_hash', 'step_id')",
    )
    assert columns == []


async def test_012_dates_existing_rows_and_its_downgrade_keeps_or_refuses(empty_db: str) -> None:
    await asyncio.to_thread(upgrade, empty_db, "012_memory_in_words")
    await _sql(
        empty_db,
        "INSERT INTO embeddings (id, actor, content, content_hash, embedding, created_at) "
        f"VALUES ('00000000-0000-0000-0000-000000000001', 'a', 'x', sha256('x'::bytea), "
        f"'{VECTOR}', '2025-01-02T03:04:05Z')",
    )
    await asyncio.to_thread(upgrade, empty_db, "013_memory_in_time")
    assert await _sql(
        empty_db, "SELECT valid_from = created_at, valid_to, key FROM embeddings"
    ) == [(True, None, None)]

    # Two versions of one text: the downgrade cannot restore 011's index, so it refuses.
    await _sql(empty_db, "UPDATE embeddings SET key = 'k', valid_to = now()")
    await _sql(
        empty_db,
        "INSERT INTO embeddings (id, actor, content, content_hash, key, embedding) VALUES "
        f"('00000000-0000-0000-0000-000000000002', 'a', 'x', sha256('x'::bytea), 'k', "
        f"'{VECTOR}')",
    )
    with pytest.raises(RuntimeError, match="more than one version"):
        await asyncio.to_thread(downgrade, empty_db, "012_memory_in_words")
    assert await _sql(empty_db, "SELECT version_num FROM alembic_version") == [
        ("013_memory_in_time",)
    ]
    await _sql(
        empty_db,
        "UPDATE embeddings SET content = 'y', content_hash = NULL WHERE "
        "id = '00000000-0000-0000-0000-000000000001'",
    )
    await asyncio.to_thread(downgrade, empty_db, "012_memory_in_words")
    assert await _sql(empty_db, "SELECT count(*) FROM embeddings") == [(2,)]
