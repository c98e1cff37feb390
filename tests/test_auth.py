"""API keys (library and CLI) and the actor / ownership dependencies."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.auth import CurrentActor, OwnedRun
from apps.core_api.main import create_app
from chad_memory import ApiKeyStore, NotFoundError, PostgresStore, RunCreate
from chad_memory.models import ApiKey
from chad_memory.settings import Settings


async def test_keys_are_hashed_listed_and_revocable(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    keys = ApiKeyStore(session_factory)
    created = await keys.create_key("alice", "laptop")
    assert created.secret.startswith("cm_")
    assert len(created.secret) > 40
    async with session_factory() as session:
        stored = await session.scalar(select(ApiKey.key_hash).where(ApiKey.id == created.key.id))
    assert stored == hashlib.sha256(created.secret.encode()).hexdigest()
    assert created.secret not in (stored or "")

    authed = await keys.authenticate(created.secret)
    assert authed is not None
    assert authed.actor == "alice"
    assert await keys.authenticate(created.secret + "x") is None
    assert await keys.authenticate("nonsense") is None
    await keys.aclose()  # last_used_at is written in the background
    listed = await keys.list_keys("alice")
    assert [k.id for k in listed] == [created.key.id]
    assert listed[0].last_used_at is not None
    assert await keys.list_keys("bob") == []

    revoked = await keys.revoke_key(created.key.id)
    assert revoked.revoked_at is not None
    assert await keys.authenticate(created.secret) is None
    with pytest.raises(NotFoundError):
        await keys.revoke_key(uuid.uuid4())


def _probe_app(engine: AsyncEngine, settings: Settings) -> FastAPI:
    app = create_app(engine=engine, settings=settings)

    @app.get("/probe/me")
    async def me(actor: CurrentActor) -> dict[str, str]:
        return {"actor": actor}

    @app.get("/probe/runs/{run_id}")
    async def run(run: OwnedRun) -> dict[str, str]:
        return {"id": str(run.id)}

    return app


async def test_concurrent_requests_with_an_uncached_key_share_one_lookup(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    created = await ApiKeyStore(session_factory).create_key("alice")
    lookups: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM api_keys" in statement and "key_hash" in statement:
            lookups.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        fresh = ApiKeyStore(session_factory)  # nothing cached
        found = await asyncio.gather(*(fresh.authenticate(created.secret) for _ in range(20)))
        assert {key.actor for key in found if key is not None} == {"alice"}
        assert all(key is not None for key in found)
        assert len(lookups) == 1
        # Unknown keys are not cached, and are not shared once the lookup is done.
        assert await fresh.authenticate(created.secret + "x") is None
        assert await fresh.authenticate(created.secret + "x") is None
        assert len(lookups) == 3
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_bearer_auth_and_ownership(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    keys = ApiKeyStore(session_factory)
    alice = (await keys.create_key("alice")).secret
    bob_key = await keys.create_key("bob")
    run = await PostgresStore(session_factory).save_run(RunCreate(actor="alice"))
    # No key cache here: the revocation below must take effect at once.
    app = _probe_app(engine, Settings(auth_mode="api_key", api_key_cache_seconds=0))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        missing = await c.get("/probe/me")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        # The trusted header means nothing in the default mode.
        spoof = await c.get("/probe/me", headers={"X-Actor-ID": "alice"})
        assert spoof.status_code == 401
        bad = await c.get("/probe/me", headers={"Authorization": "Bearer cm_nope"})
        assert bad.status_code == 401
        ok = await c.get("/probe/me", headers={"Authorization": f"Bearer {alice}"})
        assert ok.json() == {"actor": "alice"}

        as_alice = {"Authorization": f"Bearer {alice}"}
        as_bob = {"Authorization": f"Bearer {bob_key.secret}"}
        assert (await c.get(f"/probe/runs/{run.id}", headers=as_alice)).status_code == 200
        forbidden = await c.get(f"/probe/runs/{run.id}", headers=as_bob)
        assert forbidden.status_code == 403
        assert "detail" in forbidden.json()
        assert (await c.get(f"/probe/runs/{uuid.uuid4()}", headers=as_bob)).status_code == 404
        assert (await c.get("/probe/runs/not-a-uuid", headers=as_bob)).status_code == 422

        await keys.revoke_key(bob_key.key.id)
        assert (await c.get("/probe/me", headers=as_bob)).status_code == 401


async def test_trusted_header_mode(engine: AsyncEngine) -> None:
    app = _probe_app(engine, Settings(auth_mode="trusted_header"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        assert (await c.get("/probe/me")).status_code == 401
        ok = await c.get("/probe/me", headers={"X-Actor-ID": "carol"})
        assert ok.json() == {"actor": "carol"}


async def test_cli_keys_create_prints_key_last(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chad_memory.cli",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        return proc.returncode or 0, out.decode()

    code, out = await cli("keys", "create", "--actor", "dave", "--name", "ci")
    assert code == 0, out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("cm_")
    code, out = await cli("keys", "list", "--actor", "dave")
    assert code == 0, out
    assert secret[:9] in out
    assert secret not in out
    key_id = out.strip().splitlines()[-1].split("\t")[0]
    code, out = await cli("keys", "revoke", key_id)
    assert code == 0, out
    code, out = await cli("keys", "revoke", str(uuid.uuid4()))
    assert code == 1
    assert "not found" in out
