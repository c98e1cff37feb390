"""Who may call /api: local mode (this machine only), API keys and trusted headers as
elsewhere; and CORS for a browser front end on another origin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore
from chad_memory.settings import Settings, is_loopback
from tests.agentkit.conftest import FRONT_END

THREAD = {"agent_type": "chat", "model": "qwen:7b", "provider": "ollama"}
AppClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_client(engine: AsyncEngine) -> AppClient:
    @asynccontextmanager
    async def make(settings: Settings, peer: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(engine=engine, settings=settings)
        transport = httpx.ASGITransport(app=app, client=(peer, 50_000))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as client,
        ):
            yield client

    return make


# Local mode ---------------------------------------------------------------------------


async def test_local_mode_acts_as_local_actor(app_client: AppClient) -> None:
    async with app_client(Settings(auth_mode="local", local_actor="ann")) as c:
        created = await c.post("/api/threads", json=THREAD)
        assert created.status_code == 200
        native = await c.get(f"/threads/{created.json()['id']}")
        assert native.json()["actor"] == "ann"
    async with app_client(Settings(auth_mode="local")) as c:
        # Another local actor does not see ann's thread.
        assert (await c.get(f"/api/threads/{created.json()['id']}")).status_code == 404
        assert (await c.get("/api/threads")).json() == {"threads": []}


async def test_local_mode_serves_loopback_peers_only(app_client: AppClient) -> None:
    """Other machines are refused should the app be served beyond loopback some other
    way (plain uvicorn on 0.0.0.0)."""
    for peer in ("::1", "127.0.0.2"):
        async with app_client(Settings(auth_mode="local"), peer=peer) as c:
            assert (await c.get("/api/threads")).status_code == 200, peer
    for peer in ("192.168.1.20", "10.0.0.1", "2001:db8::1", "testclient"):
        async with app_client(Settings(auth_mode="local"), peer=peer) as c:
            for method, path in (("GET", "/api/threads"), ("POST", "/api/threads")):
                resp = await c.request(method, path, json=THREAD)
                assert resp.status_code == 401, peer
                assert resp.json() == {
                    "detail": "AUTH_MODE=local answers requests from this machine only"
                }
            assert (await c.get("/health")).status_code == 200


def test_local_actor_setting_is_checked() -> None:
    for bad in ("", "a" * 256, "nul\x00"):
        with pytest.raises(ValidationError, match="local_actor"):
            Settings(auth_mode="local", local_actor=bad)


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.0.1", "example.com", ""]))


# The other modes on the same routes ---------------------------------------------------


async def test_api_keys_work_on_api_routes(
    app_client: AppClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    keys = ApiKeyStore(session_factory)
    alice = {"Authorization": f"Bearer {(await keys.create_key('alice')).secret}"}
    bob = {"Authorization": f"Bearer {(await keys.create_key('bob')).secret}"}
    async with app_client(Settings(auth_mode="api_key")) as c:
        assert (await c.get("/api/threads")).status_code == 401
        assert (await c.post("/api/threads", json=THREAD)).status_code == 401
        created = await c.post("/api/threads", json=THREAD, headers=alice)
        assert created.status_code == 200
        tid = created.json()["id"]
        assert (await c.get(f"/api/threads/{tid}", headers=bob)).json() == {
            "detail": "Thread not found"
        }
        assert (await c.get("/api/threads", headers=bob)).json() == {"threads": []}
        listed = await c.get("/api/threads", headers=alice)
        assert [t["id"] for t in listed.json()["threads"]] == [tid]


async def test_trusted_header_works_on_api_routes(app_client: AppClient) -> None:
    async with app_client(Settings(auth_mode="trusted_header")) as c:
        assert (await c.get("/api/threads")).status_code == 401
        created = await c.post("/api/threads", json=THREAD, headers={"X-Actor-ID": "carol"})
        native = await c.get(f"/threads/{created.json()['id']}", headers={"X-Actor-ID": "carol"})
        assert native.json()["actor"] == "carol"


# CORS ---------------------------------------------------------------------------------


def preflight(method: str, origin: str = FRONT_END) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type",
    }


async def test_preflight_from_the_front_end(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("POST", "/api/threads"),
        ("PATCH", "/api/threads/some-id"),
        ("DELETE", "/api/messages/some-id"),
    ):
        resp = await client.options(path, headers=preflight(method))
        assert resp.status_code == 200, resp.text
        assert resp.headers["access-control-allow-origin"] == FRONT_END
        assert method in resp.headers["access-control-allow-methods"]
        assert "content-type" in resp.headers["access-control-allow-headers"].lower()
        # Credentials off: browsers send no cookies, and none are asked for.
        assert "access-control-allow-credentials" not in resp.headers


async def test_preflight_from_another_origin_is_refused(client: httpx.AsyncClient) -> None:
    for origin in ("http://localhost:5174", "http://evil.example", "null"):
        resp = await client.options("/api/threads", headers=preflight("POST", origin))
        assert resp.status_code == 400
        assert "access-control-allow-origin" not in resp.headers


async def test_answers_carry_cors_headers_errors_included(client: httpx.AsyncClient) -> None:
    origin = {"Origin": FRONT_END}
    ok = await client.get("/api/threads", headers=origin)
    missing = await client.get("/api/threads/nope", headers=origin)
    too_big = await client.post(
        "/api/threads",
        content=b"{" + b" " * (11 * 1024 * 1024) + b"}",
        headers={**origin, "Content-Type": "application/json"},
    )
    for resp, status in ((ok, 200), (missing, 404), (too_big, 413)):
        assert resp.status_code == status
        assert resp.headers["access-control-allow-origin"] == FRONT_END
    other = await client.get("/api/threads", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_no_cors_origins_no_cors(app_client: AppClient) -> None:
    async with app_client(Settings(auth_mode="local")) as c:
        resp = await c.options("/api/threads", headers=preflight("POST"))
        assert resp.status_code == 405
        assert "access-control-allow-origin" not in resp.headers
        got = await c.get("/api/threads", headers={"Origin": FRONT_END})
        assert "access-control-allow-origin" not in got.headers


def test_cors_origins_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", " http://localhost:5173 ,HTTPS://App.Example:8443,")
    assert Settings().cors_origins == ["http://localhost:5173", "https://app.example:8443"]
    monkeypatch.setenv("CORS_ORIGINS", "")
    assert Settings().cors_origins == []
    monkeypatch.setenv("CORS_ORIGINS", "*")
    assert Settings().cors_origins == ["*"]
    for bad in (
        "http://localhost:5173/",
        "localhost:5173",
        "http://h:99999",
        "ftp://h",
        "http://u@h",
    ):
        monkeypatch.setenv("CORS_ORIGINS", bad)
        with pytest.raises(ValidationError, match="CORS_ORIGINS entry"):
            Settings()
