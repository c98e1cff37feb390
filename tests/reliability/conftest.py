"""Fixtures for the reliability suite: side connections that hold locks or kill backends.

Every engine made here carries its own `application_name`, so a test can find exactly the
store's connections in pg_stat_activity and terminate them, and nothing else.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore
from chad_memory.database import create_engine, get_session_factory
from chad_memory.settings import Settings
from tests.ui.conftest import dash  # noqa: F401  (the dashboard on the sample data)

EngineMaker = Callable[..., tuple[AsyncEngine, str]]


@pytest.fixture
async def side_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Connections outside the store: they hold locks, watch pg_stat_activity, kill backends."""
    eng = create_async_engine(database_url, poolclass=NullPool)
    yield eng
    await eng.dispose()


@pytest.fixture
async def make_engine(database_url: str) -> AsyncIterator[EngineMaker]:
    """(engine, its application_name) from Settings fields; disposed after the test."""
    made: list[AsyncEngine] = []

    def make(
        engine_options: dict[str, Any] | None = None, **fields: Any
    ) -> tuple[AsyncEngine, str]:
        fields.setdefault("db_application_name", f"chad-rel-{uuid.uuid4().hex[:10]}")
        settings = Settings(database_url=database_url, **fields)
        eng = create_engine(database_url, settings, **(engine_options or {}))
        made.append(eng)
        return eng, settings.db_application_name

    yield make
    for eng in made:
        await eng.dispose()


async def backend_pids(conn: AsyncConnection, application_name: str) -> list[int]:
    """The server processes serving connections of one application in this database."""
    rows = await conn.execute(
        text(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = :name AND datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ),
        {"name": application_name},
    )
    return [r[0] for r in rows]


async def terminate(conn: AsyncConnection, application_name: str) -> int:
    """pg_terminate_backend on every connection of that application; returns how many."""
    pids = await backend_pids(conn, application_name)
    for pid in pids:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    return len(pids)


async def wait_for_lock_wait(conn: AsyncConnection, application_name: str) -> None:
    """Return once a backend of that application is blocked on a lock (fails after 10 s)."""
    for _ in range(500):
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
                " AND datname = current_database() AND wait_event_type = 'Lock'"
            ),
            {"name": application_name},
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no backend of {application_name} ever waited on a lock")


@pytest.fixture
async def watcher(side_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """An autocommit connection, so every look at pg_stat_activity is a fresh snapshot."""
    async with side_engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@dataclass
class Served:
    """The app in-process over httpx, with two actors' bearer headers."""

    client: httpx.AsyncClient
    app: FastAPI
    alice: dict[str, str]
    bob: dict[str, str]


@asynccontextmanager
async def serve(engine: AsyncEngine, **settings: Any) -> AsyncIterator[Served]:
    """create_app on `engine` (lifespan run), keys for alice and bob made through it."""
    app = create_app(engine=engine, settings=Settings(auth_mode="api_key", **settings))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30
        ) as client,
    ):
        keys = ApiKeyStore(get_session_factory(engine))
        alice = (await keys.create_key("alice")).secret
        bob = (await keys.create_key("bob")).secret
        yield Served(
            client,
            app,
            {"Authorization": f"Bearer {alice}"},
            {"Authorization": f"Bearer {bob}"},
        )
