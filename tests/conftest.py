"""Shared fixtures: a real PostgreSQL + pgvector, migrated by Alembic, one database a test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chad_memory.database import create_engine, get_session_factory
from chad_memory.migrations import upgrade
from chad_memory.stores import PgVectorStore, PostgresStore
from tests.database import run_admin, server_url, unique_name, with_database


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """The server's maintenance database; starts the server for the whole session."""
    with server_url() as (url, origin):
        print(f"\n[tests] PostgreSQL from {origin}")
        yield url


@pytest.fixture(scope="session")
def template_db(admin_url: str) -> Iterator[str]:
    """A database migrated to head by the real Alembic revisions, copied for each test."""
    name = unique_name("chad_template")
    asyncio.run(run_admin(admin_url, f'CREATE DATABASE "{name}"'))
    upgrade(with_database(admin_url, name))
    yield name
    asyncio.run(run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database_url(admin_url: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own (a copy of the template: a few ms)."""
    name = unique_name("chad_test")
    await run_admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield with_database(admin_url, name)
    await run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=5, max_overflow=5)
    yield eng
    await eng.dispose()


@pytest.fixture
async def other_engine(admin_url: str, template_db: str) -> AsyncIterator[AsyncEngine]:
    """A second, empty migrated database (to import an export into, for one)."""
    name = unique_name("chad_import")
    await run_admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    eng = create_engine(with_database(admin_url, name), pool_size=2, max_overflow=2)
    yield eng
    await eng.dispose()
    await run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return get_session_factory(engine)


@pytest.fixture
def store(session_factory: async_sessionmaker[AsyncSession]) -> PostgresStore:
    return PostgresStore(session_factory)


@pytest.fixture
async def vector_store(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[PgVectorStore]:
    store = PgVectorStore(session_factory)
    yield store
    await store.close()  # a background recalibration or rebuild a search started
