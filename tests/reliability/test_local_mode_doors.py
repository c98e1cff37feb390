"""Round three (issue 22), AUTH_MODE=local: a page of another site in a browser on this
machine must neither read (DNS rebinding) nor write (a simple cross-site request)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from apps.core_api.main import create_app
from chad_memory.settings import Settings

FRONT_END = "http://localhost:5173"
THREAD = {"agent_type": "chat", "model": "qwen:7b", "provider": "ollama"}


@asynccontextmanager
async def local_app(engine: AsyncEngine, base: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine=engine, settings=Settings(auth_mode="local", cors_origins=[FRONT_END]))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50_000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=base) as client,
    ):
        yield client


async def _threads(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM threads")) or 0)


async def test_only_loopback_host_names_are_served(engine: AsyncEngine) -> None:
    """Class 15: `Host: rebind.attacker.example` on 127.0.0.1 read and wrote everything."""
    async with local_app(engine, "http://localhost:8000") as c:
        made = await c.post("/api/threads", json=THREAD)
        assert made.status_code == 200
    for host in (
        "rebind.attacker.example",
        "rebind.attacker.example:8000",
        "10.0.0.1",
        "localhost.attacker.example",
        "127.0.0.1.nip.io",
        "",
    ):
        async with local_app(engine, "http://localhost:8000") as c:
            headers = {"Host": host}
            for method, path in (
                ("GET", "/api/threads"),
                ("GET", f"/api/threads/{made.json()['id']}"),
                ("GET", "/runs"),
                ("GET", "/export"),
                ("POST", "/api/threads"),
                ("POST", "/runs"),
            ):
                body = THREAD if path == "/api/threads" else {}
                answer = await c.request(method, path, json=body, headers=headers)
                assert answer.status_code == 403, (host, method, path)
                assert "Host header" in answer.json()["detail"]
            page = await c.get("/ui/threads", headers=headers)
            assert page.status_code == 303  # to the sign-in form, nothing shown
            assert "chat" not in page.text
    assert await _threads(engine) == 1
    for base in (
        "http://127.0.0.1:8000",
        "http://[::1]:8000",
        "http://localhost",
        "http://127.0.0.2",
    ):
        async with local_app(engine, base) as c:
            assert (await c.get("/api/threads")).status_code == 200, base


async def test_simple_cross_site_writes_are_refused(engine: AsyncEngine) -> None:
    """Class 16: a bodiless POST (no preflight) from another origin created a thread."""
    params = THREAD
    async with local_app(engine, "http://localhost:8000") as c:
        for origin in ("http://evil.example", "null", "http://localhost:5174"):
            bare = await c.post("/api/threads", params=params, headers={"Origin": origin})
            assert bare.status_code == 403, origin
            assert "CORS_ORIGINS" in bare.json()["detail"]
            form = await c.post(
                "/api/threads",
                params=params,
                content=b"x=1",
                headers={"Origin": origin, "Content-Type": "text/plain"},
            )
            assert form.status_code in (403, 415), origin
            gone = await c.delete("/api/threads/x", headers={"Origin": origin})
            assert gone.status_code == 403
        assert await _threads(engine) == 0

        # What browsers can send only after a passed preflight, an allowed origin, the
        # service's own pages, and clients that are not a web page all still write.
        allowed = [
            await c.post("/api/threads", json=THREAD, headers={"Origin": "http://evil.example"}),
            await c.post(
                "/api/threads",
                params=params,
                headers={"Origin": "http://evil.example", "X-Requested-With": "fetch"},
            ),
            await c.post("/api/threads", params=params, headers={"Origin": FRONT_END}),
            await c.post(
                "/api/threads", params=params, headers={"Origin": "http://localhost:8000"}
            ),
            await c.post("/api/threads", params=params),
        ]
        assert [a.status_code for a in allowed] == [200] * 5
        # Reads are not writes: a simple GET is answered (CORS decides who may read it).
        assert (
            await c.get("/api/threads", headers={"Origin": "http://evil.example"})
        ).status_code == 200
    assert await _threads(engine) == 5
