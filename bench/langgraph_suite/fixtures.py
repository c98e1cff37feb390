"""The fixtures LangGraph's `test_async_store.py` gets when it runs against
ChadMemoryStore: copied into the work directory as `tests/conftest.py` by
`python -m bench.langgraph_suite`, beside LangGraph's own test file and its
`embed_test_utils.py`.

Each test gets a fresh database copied from a migrated template; `_cursor()` gives the
file's helpers (which backdate `expires_at` and read it back from LangGraph's `store`
table) the same SQL on `store_items`.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from chad_memory.database import create_engine, get_session_factory
from chad_memory.integrations.langgraph import ChadMemoryStore
from chad_memory.migrations import upgrade
from chad_memory.stores.transactions import driver_transaction

# LangGraph's test file imports it from here; it lives beside it in the work directory.
from tests.embed_test_utils import CharacterEmbeddings  # type: ignore[import-not-found]

ADMIN = os.environ["LG_ADMIN_URL"]  # the server's maintenance database (asyncpg URL)
DEFAULT_URI = ADMIN
VECTOR_TYPES = ["vector", "halfvec"]
TEMPLATE = "lg_template_" + uuid.uuid4().hex[:8]


def _with_db(name: str) -> str:
    return make_url(ADMIN).set(database=name).render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    engine = create_async_engine(ADMIN, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def template_db() -> Iterator[None]:
    asyncio.run(_admin(f'CREATE DATABASE "{TEMPLATE}"'))
    upgrade(_with_db(TEMPLATE))
    yield
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)'))


class _Cursor:
    """What the helpers do with AsyncPostgresStore._cursor(), on chad-memory's table."""

    def __init__(self, driver: asyncpg.Connection) -> None:
        self.driver = driver
        self.rows: list[dict[str, Any]] = []

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        numbers = iter(range(1, 100))
        sql = re.sub(r"\bstore\b", "store_items", sql)
        sql = re.sub(r"%s", lambda _: f"${next(numbers)}", sql)
        self.rows = [dict(r) for r in await self.driver.fetch(sql, *params)]

    async def fetchone(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None


class LGStore(ChadMemoryStore):
    @asynccontextmanager
    async def _cursor(self) -> AsyncIterator[_Cursor]:
        async with driver_transaction(self._sessions, "test cursor") as driver:
            yield _Cursor(driver)


@asynccontextmanager
async def chad_store(**options: Any) -> AsyncIterator[LGStore]:
    name = "lg_" + uuid.uuid4().hex[:16]
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    engine = create_engine(_with_db(name), pool_size=10, max_overflow=10)
    try:
        yield LGStore(get_session_factory(engine), actor="lg", **options)
    finally:
        await engine.dispose()
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fake_embeddings() -> Any:
    return CharacterEmbeddings(dims=int(os.environ["EMBEDDING_DIM"]))
