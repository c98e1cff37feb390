"""The app in local mode with CORS for AgentKit's Vite dev server, in-process over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from chad_memory.settings import Settings
from chad_memory.stores import ThreadStore

FRONT_END = "http://localhost:5173"


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(auth_mode="local", cors_origins=[FRONT_END])
    app = create_app(engine=engine, settings=settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost:8000"
        ) as c,
    ):
        yield c


@pytest.fixture
def threads(session_factory: async_sessionmaker[AsyncSession]) -> ThreadStore:
    return ThreadStore(session_factory)
