"""Body size and content type are checked before parsing; every request is logged."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore
from chad_memory.settings import Settings
from tests.api.conftest import Api, bearer

LIMIT = 4096


async def test_body_limits_and_content_type(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    secret = (await ApiKeyStore(session_factory).create_key("alice")).secret
    app = create_app(engine=engine, settings=Settings(max_body_bytes=LIMIT))
    h = bearer(secret)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        big = {"name": "x", "metadata": {"blob": "a" * LIMIT}}
        declared = await c.post("/runs", json=big, headers=h)
        assert declared.status_code == 413
        assert "MAX_BODY_BYTES" in declared.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:
            # No Content-Length: the guard must count as it reads.
            yield b'{"name": "x", "metadata": {"blob": "'
            for _ in range(LIMIT // 512 + 2):
                yield b"a" * 512
            yield b'"}}'

        streamed = await c.post(
            "/runs", content=chunks(), headers={**h, "Content-Type": "application/json"}
        )
        assert streamed.status_code == 413

        small_stream_parts = [b'{"name": ', b'"streamed"}']

        async def small() -> AsyncIterator[bytes]:
            for part in small_stream_parts:
                yield part

        ok_stream = await c.post(
            "/runs", content=small(), headers={**h, "Content-Type": "application/json"}
        )
        assert ok_stream.status_code == 201, ok_stream.text
        assert ok_stream.json()["name"] == "streamed"

        for content_type in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            wrong = await c.post(
                "/runs", content=b'{"name": "x"}', headers={**h, "Content-Type": content_type}
            )
            assert wrong.status_code == 415, content_type
            assert "JSON" in wrong.json()["detail"]
        missing = await c.post("/runs", content=b'{"name": "x"}', headers=h)
        assert missing.status_code == 415
        charset = await c.post(
            "/runs",
            content=b'{"name": "x"}',
            headers={**h, "Content-Type": "application/json; charset=utf-8"},
        )
        assert charset.status_code == 201
        bad_length = await c.post(
            "/runs",
            content=b"{}",
            headers={**h, "Content-Type": "application/json", "Content-Length": "abc"},
        )
        assert bad_length.status_code == 400
        # Only the two 201s landed.
        listed = (await c.get("/runs", headers=h)).json()
        assert listed["total"] == 2


async def test_requests_are_logged_without_keys(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    secret = api.alice["Authorization"].split()[1]
    with caplog.at_level(logging.INFO, logger="chad_memory.api.access"):
        created = await api.client.post("/runs", json={"name": "logged"}, headers=api.alice)
        assert created.status_code == 201
        await api.client.get(f"/runs/{created.json()['id']}", headers=api.bob)
        await api.client.get("/runs?limit=0", headers={"Authorization": "Bearer cm_wrong"})
    entries = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("access")]
    assert [(e["method"], e["path"], e["status"], e["actor"]) for e in entries] == [
        ("POST", "/runs", 201, "alice"),
        ("GET", f"/runs/{created.json()['id']}", 403, "bob"),
        ("GET", "/runs", 401, None),
    ]
    assert all(e["duration_ms"] >= 0 for e in entries)
    assert all(e["event"] == "request" for e in entries)
    assert secret not in caplog.text
    assert "cm_wrong" not in caplog.text
