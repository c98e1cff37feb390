"""Revision 011 keeps every row: twins written before it stay, the newest of each gets the
content hash, and its downgrade drops only what it added."""

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


@pytest.fixture
async def empty_db(admin_url: str) -> AsyncIterator[str]:
    name = unique_name("chad_mig011")
    await run_admin(admin_url, f'CREATE DATABASE "{name}"')
    yield with_database(admin_url, name)
    await run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            return [tuple(r) for r in (await conn.execute(text(sql))).all()]
    finally:
        await engine.dispose()


async def test_011_keeps_twins_and_hashes_the_newest(empty_db: str) -> None:
    await asyncio.to_thread(upgrade, empty_db, "010")
    vector = "[" + ",".join(["1"] + ["0"] * (DIM - 1)) + "]"
    await _rows(
        empty_db,
        "INSERT INTO embeddings (id, actor, namespace, content, source_type, embedding, "
        "created_at) VALUES "
        f"('00000000-0000-0000-0000-000000000001', 'a', 'n', 'same', NULL, '{vector}', "
        "now() - interval '2 days'), "
        f"('00000000-0000-0000-0000-000000000002', 'a', 'n', 'same', NULL, '{vector}', now()), "
        f"('00000000-0000-0000-0000-000000000003', 'a', 'n', 'same', 'langgraph_store', "
        f"'{vector}', now()), "
        f"('00000000-0000-0000-0000-000000000004', 'a', 'n', NULL, NULL, '{vector}', now()) "
        "RETURNING id",
    )
    await asyncio.to_thread(upgrade, empty_db, "011_memory_in_words")
    hashed = await _rows(
        empty_db,
        "SELECT right(id::text, 1), content_hash = sha256('same'::bytea) FROM embeddings "
        "ORDER BY id",
    )
    assert hashed == [("1", None), ("2", True), ("3", None), ("4", None)]
    await asyncio.to_thread(downgrade, empty_db, "010")
    left = await _rows(empty_db, "SELECT right(id::text, 1) FROM embeddings ORDER BY id")
    assert left == [("1",), ("2",), ("3",), ("4",)]
    columns = await _rows(
        empty_db,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'embeddings' "
        "AND column_name IN ('content_hash', 'step_id')",
    )
    assert columns == []
