"""A local OpenAI-compatible embeddings server, and the service configured to use it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore, PostgresStore
from chad_memory.settings import Settings
from tests.api.conftest import Api, bearer
from tests.memory.fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


async def serve(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], **settings: Any
) -> AsyncIterator[Api]:
    keys = ApiKeyStore(session_factory)
    alice = (await keys.create_key("alice")).secret
    bob = (await keys.create_key("bob")).secret
    app = create_app(engine=engine, settings=Settings(auth_mode="api_key", **settings))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield Api(client, PostgresStore(session_factory), keys, bearer(alice), bearer(bob))


@pytest.fixture
async def api(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Api]:
    """The service as deployed by default: EMBEDDER=none."""
    async for api in serve(engine, session_factory):
        yield api


@pytest.fixture
async def words_api(
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    fake_openai: FakeOpenAI,
) -> AsyncIterator[Api]:
    """The service with EMBEDDER=openai pointed at the local fake (no retries)."""
    async for api in serve(
        engine,
        session_factory,
        embedder="openai",
        embedder_base_url=fake_openai.url,
        embedder_model="fake-embed",
        embedder_api_key="sk-test",
        embedder_timeout_s=0.5,
        embedder_retries=0,
    ):
        yield api
