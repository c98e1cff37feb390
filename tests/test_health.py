"""The app skeleton: lifespan wiring and /health against the real database."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore, EmbeddingCreate, PgVectorStore
from chad_memory.database import get_session_factory
from chad_memory.settings import get_settings


async def _get_health(engine: AsyncEngine, path: str = "/health") -> httpx.Response:
    """GET `path`; with ?details=true it sends an API key, which details need."""
    app = create_app(engine=engine)
    async with app.router.lifespan_context(app):
        headers = {}
        if "details" in path:
            secret = (await ApiKeyStore(get_session_factory(engine)).create_key("ops")).secret
            headers["Authorization"] = f"Bearer {secret}"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)


async def test_health_ok(engine: AsyncEngine) -> None:
    response = await _get_health(engine)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_health_details_show_the_vector_index(engine: AsyncEngine) -> None:
    response = await _get_health(engine, "/health?details=true")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "vector_index": {
            "name": "ix_embeddings_embedding_ivfflat",
            "method": "ivfflat",
            "lists": get_settings().ivfflat_lists,
            "m": None,
            "ef_construction": None,
            "trained_rows": 0,
            "rows": 0,
            "valid": True,
            "stale": False,
            "built_at": None,
            "calibration": None,
            "rebuild_due": False,
            "recalibration_due": False,
        },
    }


async def test_health_reports_a_stale_vector_index(
    engine: AsyncEngine, vector_store: PgVectorStore
) -> None:
    dim = get_settings().embedding_dim
    rows = [
        EmbeddingCreate(actor="a", embedding=[1.0 if j == i % dim else 0.0 for j in range(dim)])
        for i in range(1000)
    ]
    await vector_store.add_embeddings(rows)
    response = await _get_health(engine, "/health?details=true")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"  # stale hurts recall, not liveness
    assert body["vector_index"]["rows"] == 1000
    assert body["vector_index"]["trained_rows"] == 0
    assert body["vector_index"]["stale"] is True
    await vector_store.reindex()
    body = (await _get_health(engine, "/health?details=true")).json()
    assert body["vector_index"]["stale"] is False
    assert body["vector_index"]["trained_rows"] == 1000
    # The build's calibration: setting, measured recall, rows and when.
    calibration = body["vector_index"]["calibration"]
    assert calibration["setting"] == "ivfflat.probes"
    assert calibration["rows"] == 1000
    assert calibration["recall"] >= calibration["target"] == get_settings().vector_target_recall
    assert calibration["at"].startswith("20")


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
