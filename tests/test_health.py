"""The app skeleton: lifespan wiring and /health against the real database."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from apps.core_api.main import create_app


async def _get_health(engine: AsyncEngine) -> httpx.Response:
    app = create_app(engine=engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/health")


async def test_health_ok(engine: AsyncEngine) -> None:
    response = await _get_health(engine)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_health_degraded_when_database_unreachable() -> None:
    # Nothing listens on port 1: the service must still start and answer 503.
    dead = create_async_engine(
        "postgresql+asyncpg://nobody:x@127.0.0.1:1/none", connect_args={"timeout": 1}
    )
    try:
        response = await _get_health(dead)
    finally:
        await dead.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "database": "unavailable"}
