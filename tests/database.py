"""Where the test database comes from, and cheap per-test copies of a migrated template.

Order (DESIGN.md): TEST_DATABASE_URL; a testcontainers pgvector container when a Docker
engine answers; else a throwaway embedded server in a temp dir. If none can start, the
session fails loudly: integration tests are never skipped.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from chad_memory.settings import to_asyncpg_url

logger = logging.getLogger(__name__)

PGVECTOR_IMAGE = "pgvector/pgvector:pg17"


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def docker_engine_answers(timeout: float = 2.0) -> bool:
    """True only when a Docker engine (not just the client) responds, within `timeout`."""
    if os.environ.get("CHAD_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        docker.from_env(timeout=timeout).ping()
        return True
    except Exception:  # any failure means: no usable engine here
        return False


@contextmanager
def server_url() -> Iterator[tuple[str, str]]:
    """Yield (admin URL, where it came from) for a PostgreSQL server with pgvector."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        yield to_asyncpg_url(explicit), "TEST_DATABASE_URL"
        return
    if docker_engine_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(PGVECTOR_IMAGE, driver="asyncpg") as container:
            yield container.get_connection_url(), f"testcontainers {PGVECTOR_IMAGE}"
        return
    from chad_memory.embedded import start_embedded_server

    with tempfile.TemporaryDirectory(prefix="chad-memory-test-") as tmp:
        server: Any = start_embedded_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        uri: str = server.get_uri("postgres")
        try:
            yield "postgresql+asyncpg://" + uri.split("://", 1)[1], f"embedded server in {tmp}"
        finally:
            server.cleanup()


async def run_admin(url: str, *statements: str) -> None:
    """Run statements that cannot be in a transaction (CREATE/DROP DATABASE)."""
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"
