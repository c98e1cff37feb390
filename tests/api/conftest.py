"""The service driven in-process: httpx over ASGI against a real migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore, PostgresStore
from chad_memory.settings import Settings


@dataclass
class Api:
    client: httpx.AsyncClient
    store: PostgresStore
    keys: ApiKeyStore
    alice: dict[str, str]
    bob: dict[str, str]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
async def api(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Api]:
    """The app with two actors, alice and bob, each holding an API key."""
    keys = ApiKeyStore(session_factory)
    alice = (await keys.create_key("alice")).secret
    bob = (await keys.create_key("bob")).secret
    app = create_app(engine=engine, settings=Settings(auth_mode="api_key"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield Api(client, PostgresStore(session_factory), keys, bearer(alice), bearer(bob))
