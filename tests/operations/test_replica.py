"""READ_DATABASE_URL for real: two embedded PostgreSQL servers in streaming replication."""

from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore
from chad_memory.database import create_engine, get_session_factory
from chad_memory.embedded import start_embedded_server, stop_embedded_server
from chad_memory.migrations import upgrade
from chad_memory.settings import Settings
from tests.api.conftest import bearer


def _socket_of(server: Any) -> tuple[str, str]:
    """(socket directory, port) of an embedded server, from its libpq URI."""
    parts = urlsplit(server.get_uri("postgres"))
    host = parse_qs(parts.query)["host"][0]
    return host, str(parts.port or 5432)


def _url(server: Any) -> str:
    uri: str = server.get_uri("postgres")
    return "postgresql+asyncpg://" + uri.split("://", 1)[1]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """A primary, migrated, and a hot standby made from it with pg_basebackup -R."""
    root = tmp_path_factory.mktemp("replication")
    primary_dir, replica_dir = root / "primary", root / "replica"
    primary = start_embedded_server(primary_dir, cleanup_mode="delete")
    try:
        upgrade(_url(primary))
        host, port = _socket_of(primary)
        user = getattr(primary, "system_user", None)
        run_as: dict[str, Any] = {}
        if user is not None:  # as root, the servers run as their own system user
            replica_dir.mkdir(mode=0o700)
            entry = pwd.getpwnam(user)
            os.chown(replica_dir, entry.pw_uid, entry.pw_gid)
            run_as = {"user": user}
        command = [
            str(primary.bin_path / "pg_basebackup"),
            *("-h", host, "-p", port, "-U", "postgres", "-D", str(replica_dir)),
            # -c fast: an immediate checkpoint, not a spread one that a loaded machine can
            # stretch past the replication connection's timeout.
            *("-R", "-X", "stream", "-c", "fast"),
        ]
        for attempt in range(3):
            made = subprocess.run(command, capture_output=True, text=True, timeout=180, **run_as)
            if made.returncode == 0:
                break
            # pg_basebackup empties the directory it failed to fill; try again from there.
            time.sleep(1 + attempt)
        assert made.returncode == 0, made.stderr
        # The copy carries the primary's socket lock, log and handle list: not the replica's.
        for leftover in (".s.PGSQL.5432.lock", "log", ".handle_pids.json"):
            (replica_dir / leftover).unlink(missing_ok=True)
        replica = start_embedded_server(replica_dir, cleanup_mode="delete")
        try:
            yield primary, replica
        finally:
            stop_embedded_server(replica_dir)
    finally:
        stop_embedded_server(primary_dir)


async def _visible_on_replica(replica_url: str, sql: str, params: dict[str, Any]) -> bool:
    engine = create_engine(replica_url, pool_size=1, max_overflow=0)
    try:
        for _ in range(100):
            async with engine.connect() as conn:
                if await conn.scalar(text(sql), params):
                    return True
            await asyncio.sleep(0.05)
        return False
    finally:
        await engine.dispose()


async def test_reads_go_to_the_replica_and_fall_back_to_the_primary(pair: tuple[Any, Any]) -> None:
    primary, replica = pair
    primary_url, replica_url = _url(primary), _url(replica)
    engine = create_engine(primary_url, pool_size=4, max_overflow=2)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT pg_is_in_recovery()")) is False
        secret = (await ApiKeyStore(get_session_factory(engine)).create_key("alice")).secret
        settings = Settings(read_database_url=replica_url, read_replica_cooldown_seconds=60)
        app = create_app(engine=engine, settings=settings)
        h = bearer(secret)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            created = await c.post("/runs", json={"name": "replicated"}, headers=h)
            assert created.status_code == 201
            run_id = created.json()["id"]
            # The write went to the primary and streams to the standby.
            assert await _visible_on_replica(
                replica_url, "SELECT count(*) FROM runs WHERE id = :id", {"id": run_id}
            )
            # A row that exists only on the replica proves where the list was read: the
            # standby is read-only, so the test writes it on the primary behind the app's
            # back and waits until the replica has it, then removes it from nowhere else.
            listed = await c.get("/runs", headers=h)
            assert [r["id"] for r in listed.json()["items"]] == [run_id]
            state = app.state.replica
            assert state.fallbacks == 0

            # Reads that the replica lacks (lag) are answered by the primary, not 404.
            steps = await c.post(
                f"/runs/{run_id}/steps", json={"step_index": 0, "name": "s"}, headers=h
            )
            assert steps.status_code == 201
            assert (await c.get(f"/runs/{run_id}/stats", headers=h)).status_code == 200

            # The replica goes away: reads still answer, from the primary.
            replica.stop()
            again = await c.get("/runs", headers=h)
            assert again.status_code == 200
            assert [r["id"] for r in again.json()["items"]] == [run_id]
            assert not state.available
            assert state.fallbacks >= 1
            assert (await c.get(f"/runs/{run_id}/steps", headers=h)).status_code == 200
            # Usage analytics are a dashboard read too: routed, so answered by the primary now.
            before = state.fallbacks
            assert (await c.get("/analytics/usage", headers=h)).status_code == 200
            assert state.fallbacks == before + 1
            search = await c.post(
                "/memory/search", json={"embedding": [1.0] + [0.0] * 1535, "k": 1}, headers=h
            )
            assert search.status_code == 200

    finally:
        await engine.dispose()
