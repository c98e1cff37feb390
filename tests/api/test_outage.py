"""The database goes away and comes back: the service answers 503, then recovers alone.

A dedicated embedded server in a temp dir is stopped and restarted inside the test, so
the shared test server is never disturbed.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore
from chad_memory.database import create_engine, get_session_factory
from chad_memory.embedded import start_embedded_server, stop_embedded_server
from chad_memory.migrations import upgrade
from chad_memory.settings import Settings
from tests.api.conftest import bearer


@pytest.fixture
def own_server() -> Iterator[tuple[Any, str]]:
    """(server handle, asyncpg URL) of a throwaway embedded server of this test's own."""
    # A short path: the server's unix socket lives under it (sun_path is ~100 bytes).
    with tempfile.TemporaryDirectory(prefix="cm-outage-") as tmp:
        data_dir = Path(tmp) / "pgdata"
        server = start_embedded_server(data_dir, cleanup_mode="delete")
        try:
            yield server, "postgresql+asyncpg://" + server.get_uri("postgres").split("://", 1)[1]
        finally:
            stop_embedded_server(data_dir)


async def test_data_routes_answer_503_while_database_is_down(
    own_server: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, url = own_server
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url, pool_size=2, max_overflow=2)
    try:
        secret = (await ApiKeyStore(get_session_factory(engine)).create_key("alice")).secret
        h = bearer(secret)
        app = create_app(engine=engine, settings=Settings())
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            created = await c.post("/runs", json={"name": "before"}, headers=h)
            assert created.status_code == 201

            await asyncio.to_thread(server.stop)
            assert (await c.get("/health")).json() == {
                "status": "degraded",
                "database": "unavailable",
            }
            down = [
                await c.get("/runs", headers=h),
                await c.get(f"/runs/{created.json()['id']}", headers=h),
                await c.post("/runs", json={"name": "during"}, headers=h),
                await c.post(
                    "/memory/search",
                    json={"embedding": [1.0] * Settings().embedding_dim, "k": 1},
                    headers=h,
                ),
            ]
            for response in down:
                assert response.status_code == 503, (response.request.url, response.text)
                assert "database unavailable" in response.json()["detail"]
                assert response.headers["retry-after"] == "1"
            unavailable = [
                r
                for r in caplog.records
                if r.name.endswith("access") and '"status": 503' in r.message
            ]
            assert len(unavailable) >= len(down)
            assert all(r.levelno == logging.WARNING for r in unavailable)

            # A second process-like app that starts while the database is down.
            late_engine = create_engine(url, pool_size=1, max_overflow=0)
            late_app = create_app(engine=late_engine, settings=Settings())
            late = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=late_app), base_url="http://t"
            )
            async with late_app.router.lifespan_context(late_app), late:
                assert (await late.get("/runs", headers=h)).status_code == 503

                await asyncio.to_thread(server.ensure_postgres_running)
                deadline = time.monotonic() + 30
                while (await late.get("/health")).status_code != 200:
                    assert time.monotonic() < deadline, "the late app did not recover"
                    await asyncio.sleep(0.2)
                assert (await late.get("/runs", headers=h)).json()["total"] == 1
            await late_engine.dispose()

            deadline = time.monotonic() + 30
            while (await c.get("/health")).status_code != 200:
                assert time.monotonic() < deadline, "the service did not recover"
                await asyncio.sleep(0.2)
            # Same app, same engine, same pool: nothing was restarted but the database.
            listed = await c.get("/runs", headers=h)
            assert listed.status_code == 200
            assert [r["name"] for r in listed.json()["items"]] == ["before"]
            after = await c.post("/runs", json={"name": "after"}, headers=h)
            assert after.status_code == 201
    finally:
        await engine.dispose()
