"""The dashboard driven in-process (httpx over ASGI) on a database holding `sample.seed`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from chad_memory.settings import Settings
from tests.ui.sample import Sample, seed

SECRET = "test-session-secret-0123456789"


@dataclass
class Dashboard:
    client: httpx.AsyncClient
    sample: Sample

    async def sign_in(self, key: str) -> httpx.Response:
        form = await self.client.get("/ui/login")
        return await self.client.post(
            "/ui/login", data={"api_key": key, "csrf": csrf_of(form.text), "next": "/ui/runs"}
        )


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


@pytest.fixture
async def dash(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Dashboard]:
    sample = await seed(session_factory, history=False)
    settings = Settings(auth_mode="api_key", ui_session_secret=SecretStr(SECRET))
    app = create_app(engine=engine, settings=settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield Dashboard(client, sample)
