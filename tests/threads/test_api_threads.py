"""The /threads and /messages routes, driven through the real app and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore, PostgresStore, RunCreate
from chad_memory.errors import ForbiddenError
from chad_memory.settings import Settings

ALICE = {"X-Actor-ID": "alice"}
BOB = {"X-Actor-ID": "bob"}


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine=engine, settings=Settings(auth_mode="trusted_header"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        yield c


async def _thread(c: httpx.AsyncClient, **body: object) -> dict[str, Any]:
    resp = await c.post("/threads", json={"agent_type": "chat", **body}, headers=ALICE)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def test_thread_crud(client: httpx.AsyncClient) -> None:
    c = client
    created = await _thread(c, model="gpt-4o", provider="openai", metadata={"a": 1})
    assert created["actor"] == "alice"
    assert created["title"] == "New chat conversation"
    tid = created["id"]

    got = await c.get(f"/threads/{tid}", headers=ALICE)
    assert got.status_code == 200
    assert got.json() == created

    patched = await c.patch(f"/threads/{tid}", json={"title": "Holiday"}, headers=ALICE)
    assert patched.status_code == 200
    assert patched.json()["title"] == "Holiday"
    assert patched.json()["metadata"] == {"a": 1}
    assert datetime.fromisoformat(patched.json()["updated_at"]) > datetime.fromisoformat(
        created["updated_at"]
    )

    other = await _thread(c, title="Second")
    listing = await c.get("/threads", headers=ALICE)
    assert listing.status_code == 200
    body = listing.json()
    assert set(body) == {"items", "total", "next_cursor"}
    assert body["total"] == 2
    assert [t["id"] for t in body["items"]] == [other["id"], tid]
    assert (await c.get("/threads", headers=BOB)).json() == {
        "items": [],
        "total": 0,
        "next_cursor": None,
    }

    deleted = await c.delete(f"/threads/{tid}", headers=ALICE)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await c.get(f"/threads/{tid}", headers=ALICE)).status_code == 404
    assert (await c.delete(f"/threads/{tid}", headers=ALICE)).status_code == 404


async def test_threads_list_pagination(client: httpx.AsyncClient) -> None:
    made = [(await _thread(client, title=f"t{i}"))["id"] for i in range(5)]
    seen: list[object] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/threads", params=params, headers=ALICE)).json()
        assert body["total"] == 5
        seen.extend(t["id"] for t in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    bad = await client.get("/threads", params={"cursor": "zzz"}, headers=ALICE)
    assert bad.status_code == 422
    assert (await client.get("/threads", params={"limit": 0}, headers=ALICE)).status_code == 422
    assert (await client.get("/threads", params={"limit": 201}, headers=ALICE)).status_code == 422


async def test_messages_one_or_many_in_order(client: httpx.AsyncClient) -> None:
    c = client
    tid = (await _thread(c))["id"]
    one = await c.post(
        f"/threads/{tid}/messages", json={"role": "user", "content": "hi"}, headers=ALICE
    )
    assert one.status_code == 201
    assert one.json()["content"] == "hi"
    assert one.json()["thread_id"] == tid
    many = await c.post(
        f"/threads/{tid}/messages",
        json=[
            {"role": "assistant", "tool_calls": [{"name": "search", "arguments": {"q": "x"}}]},
            {"role": "tool", "content": "result", "artifact_data": {"rows": 3}},
            {"role": "assistant", "content": "done", "metadata": {"tokens": 5}},
        ],
        headers=ALICE,
    )
    assert many.status_code == 201
    assert [m["role"] for m in many.json()] == ["assistant", "tool", "assistant"]

    first = await c.get(f"/threads/{tid}/messages", params={"limit": 3}, headers=ALICE)
    body = first.json()
    assert body["total"] == 4
    assert [m["content"] for m in body["items"]] == ["hi", None, "result"]
    assert body["items"][1]["tool_calls"] == [{"name": "search", "arguments": {"q": "x"}}]
    rest = await c.get(
        f"/threads/{tid}/messages", params={"cursor": body["next_cursor"]}, headers=ALICE
    )
    assert [m["content"] for m in rest.json()["items"]] == ["done"]
    assert rest.json()["next_cursor"] is None

    # Adding a message makes the thread the most recently active one.
    newer = await _thread(c)
    assert (await c.get("/threads", headers=ALICE)).json()["items"][0]["id"] == newer["id"]
    await c.post(f"/threads/{tid}/messages", json={"role": "user", "content": "?"}, headers=ALICE)
    assert (await c.get("/threads", headers=ALICE)).json()["items"][0]["id"] == tid

    mid = one.json()["id"]
    assert (await c.delete(f"/messages/{mid}", headers=BOB)).status_code == 403
    assert (await c.delete(f"/messages/{mid}", headers=ALICE)).status_code == 204
    assert (await c.delete(f"/messages/{mid}", headers=ALICE)).status_code == 404
    assert (await c.delete("/messages/not-a-uuid", headers=ALICE)).status_code == 422
    listed = (await c.get(f"/threads/{tid}/messages", headers=ALICE)).json()
    assert mid not in [m["id"] for m in listed["items"]]
    assert listed["total"] == 4


async def test_bad_input_is_422(client: httpx.AsyncClient) -> None:
    c = client
    tid = (await _thread(c))["id"]
    cases: list[tuple[str, str, object]] = [
        ("POST", "/threads", {}),  # agent_type missing
        ("POST", "/threads", {"agent_type": ""}),
        ("POST", "/threads", {"agent_type": "chat", "actor": "mallory"}),
        ("POST", "/threads", {"agent_type": "chat", "id": str(uuid.uuid4())}),
        ("POST", "/threads", {"agent_type": "chat", "created_at": "2020-01-01T00:00:00Z"}),
        ("POST", "/threads", {"agent_type": "nul\u0000byte"}),
        ("PATCH", f"/threads/{tid}", {"title": None}),
        ("PATCH", f"/threads/{tid}", {"actor": "mallory"}),
        ("POST", f"/threads/{tid}/messages", {"content": "no role"}),
        ("POST", f"/threads/{tid}/messages", {"role": "wizard", "content": "x"}),
        ("POST", f"/threads/{tid}/messages", []),
        ("POST", f"/threads/{tid}/messages", [{"role": "user"}] * 1001),
        ("POST", f"/threads/{tid}/messages", [{"role": "user"}, {"role": "bad"}]),
        ("POST", f"/threads/{tid}/messages", {"role": "user", "tool_calls": "nope"}),
        ("POST", f"/threads/{tid}/messages", {"role": "user", "thread_id": str(uuid.uuid4())}),
    ]
    for method, url, body in cases:
        resp = await c.request(method, url, json=body, headers=ALICE)
        assert resp.status_code == 422, (method, url, body, resp.text)
        assert "detail" in resp.json()
    # NaN is not JSON; a body carrying it is refused, not stored.
    nan = await c.post(
        f"/threads/{tid}/messages",
        content=b'{"role": "user", "metadata": {"x": NaN}}',
        headers={**ALICE, "Content-Type": "application/json"},
    )
    assert nan.status_code == 422
    assert nan.json()["detail"][0]["loc"][0] == "body"
    for url in ("/threads/not-a-uuid", "/threads/not-a-uuid/messages", "/threads/1/runs"):
        assert (await c.get(url, headers=ALICE)).status_code == 422
    # Nothing above reached the thread.
    assert (await c.get(f"/threads/{tid}/messages", headers=ALICE)).json()["total"] == 0


async def test_auth_and_ownership_everywhere(client: httpx.AsyncClient) -> None:
    c = client
    tid = (await _thread(c))["id"]
    unknown = uuid.uuid4()
    routes: list[tuple[str, str, object]] = [
        ("GET", "/threads/{}", None),
        ("PATCH", "/threads/{}", {"title": "mine now"}),
        ("DELETE", "/threads/{}", None),
        ("POST", "/threads/{}/messages", {"role": "user", "content": "hi"}),
        ("GET", "/threads/{}/messages", None),
        ("GET", "/threads/{}/runs", None),
    ]
    for method, template, body in routes:
        url = template.format(tid)
        assert (await c.request(method, url, json=body)).status_code == 401, url
        forbidden = await c.request(method, url, headers=BOB, json=body)
        assert forbidden.status_code == 403, (method, url, forbidden.text)
        missing = await c.request(method, template.format(unknown), headers=BOB, json=body)
        assert missing.status_code == 404, (method, url)
    for method, url in (("GET", "/threads"), ("POST", "/threads"), ("DELETE", f"/messages/{tid}")):
        assert (await c.request(method, url, json={"agent_type": "x"})).status_code == 401
    # Alice's thread survived all of Bob's attempts, unchanged and empty.
    got = (await c.get(f"/threads/{tid}", headers=ALICE)).json()
    assert got["title"] == "New chat conversation"
    assert (await c.get(f"/threads/{tid}/messages", headers=ALICE)).json()["total"] == 0


async def test_bearer_keys_work_too(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    secret = (await ApiKeyStore(session_factory).create_key("alice")).secret
    app = create_app(engine=engine, settings=Settings(auth_mode="api_key"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        assert (
            await c.post("/threads", json={"agent_type": "x"}, headers=ALICE)
        ).status_code == 401
        made = await c.post(
            "/threads", json={"agent_type": "x"}, headers={"Authorization": f"Bearer {secret}"}
        )
        assert made.status_code == 201
        assert made.json()["actor"] == "alice"


async def test_thread_runs(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    tid = (await _thread(client))["id"]
    runs = PostgresStore(session_factory)
    thread_id = uuid.UUID(str(tid))
    linked = [
        await runs.save_run(RunCreate(actor="alice", name=f"r{i}", thread_id=thread_id))
        for i in range(3)
    ]
    await runs.save_run(RunCreate(actor="alice", name="unlinked"))
    # A run may only join its own actor's thread: the library refuses Bob's link too.
    with pytest.raises(ForbiddenError):
        await runs.save_run(RunCreate(actor="bob", name="bobs", thread_id=thread_id))

    resp = await client.get(f"/threads/{tid}/runs", params={"limit": 2}, headers=ALICE)
    assert resp.status_code == 200
    body = resp.json()
    assert body["total"] == 3
    assert [r["name"] for r in body["items"]] == ["r2", "r1"]
    rest = await client.get(
        f"/threads/{tid}/runs", params={"cursor": body["next_cursor"]}, headers=ALICE
    )
    assert [r["name"] for r in rest.json()["items"]] == ["r0"]

    assert (await client.delete(f"/threads/{tid}", headers=ALICE)).status_code == 204
    for run in linked:
        kept = await runs.get_run(run.id)
        assert kept.thread_id is None


async def test_openapi_documents_the_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"/threads", "/threads/{thread_id}", "/threads/{thread_id}/messages"} <= set(paths)
    assert {"/threads/{thread_id}/runs", "/messages/{message_id}"} <= set(paths)
    created = paths["/threads"]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"]["$ref"].endswith("/ThreadRecord")
    schemas = spec["components"]["schemas"]
    assert {"ThreadRecord", "MessageRecord", "ThreadCreate", "MessageCreate"} <= set(schemas)
    listing = paths["/threads"]["get"]["responses"]["200"]["content"]["application/json"]
    listing_schema = schemas[listing["schema"]["$ref"].rsplit("/", 1)[1]]
    assert set(listing_schema["properties"]) == {"items", "total", "next_cursor"}
    assert "actor" not in schemas["ThreadCreate"]["properties"]
    for path in ("/threads/{thread_id}", "/threads/{thread_id}/runs", "/messages/{message_id}"):
        for op in paths[path].values():
            assert {"401", "403", "404", "422"} <= set(op["responses"]), path
