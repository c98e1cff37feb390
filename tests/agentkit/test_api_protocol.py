"""/api, AgentKit's thread protocol: the answers it expects, and our 4xx for bad input."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx

from chad_memory import MessageCreate, ThreadCreate
from chad_memory.stores import ThreadStore

THREAD = {"agent_type": "chat", "model": "qwen:7b", "provider": "ollama"}
NOT_FOUND = {"detail": "Thread not found"}


async def new_thread(c: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    resp = await c.post("/api/threads", json={**THREAD, **extra})
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def bobs_thread(threads: ThreadStore) -> uuid.UUID:
    thread = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="bob")
    await threads.add_message(thread.id, MessageCreate(role="user", content="mine"), actor="bob")
    return thread.id


def errors_at(resp: httpx.Response) -> list[list[Any]]:
    assert resp.status_code == 422, resp.text
    return [e["loc"] for e in resp.json()["detail"]]


# Threads ------------------------------------------------------------------------------


async def test_create_answers_the_protocol_thread(client: httpx.AsyncClient) -> None:
    data = await new_thread(client, title="Trip")
    assert sorted(data) == [
        "agent_type", "created_at", "id", "model", "provider", "title", "updated_at"
    ]  # fmt: skip
    assert uuid.UUID(data["id"])
    assert (data["title"], data["agent_type"], data["model"], data["provider"]) == (
        "Trip", "chat", "qwen:7b", "ollama"
    )  # fmt: skip
    assert datetime.fromisoformat(data["created_at"]).utcoffset() is not None


BAD_CREATES: list[tuple[dict[str, Any] | None, dict[str, str], list[str]]] = [
    ({"agent_type": "chat"}, {}, ["body", "model"]),  # AgentKit: missing fields are 422
    ({**THREAD, "title": ""}, {}, ["body", "title"]),
    ({**THREAD, "title": None, "actor": "bob"}, {}, ["body", "actor"]),
    ({**THREAD, "agent_type": "chat\x00"}, {}, ["body", "agent_type"]),
    ({**THREAD, "model": "m" * 513}, {}, ["body", "model"]),
    (None, {"agent_type": "chat", "model": "m"}, ["query", "provider"]),
    (None, {**THREAD, "agent_type": "chat\x00"}, ["query", "agent_type"]),
    (None, {**THREAD, "title": ""}, ["query", "title"]),
    (None, {}, ["query", "agent_type"]),
    (THREAD, {"title": "in the query too"}, ["query", "title"]),
]


async def test_create_refuses_bad_input(client: httpx.AsyncClient, threads: ThreadStore) -> None:
    for body, params, loc in BAD_CREATES:
        resp = await client.post("/api/threads", json=body, params=params)
        assert loc in errors_at(resp), (body, params)
    assert (await threads.list_threads("local")).items == []


async def test_create_with_query_parameters_and_a_title(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/threads", params={**THREAD, "title": "From the query"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["title"] == "From the query"
    resp = await client.post("/api/threads", json={**THREAD, "title": None})
    assert resp.json()["title"] == "New chat conversation"


async def test_list_pages_by_limit_and_offset(client: httpx.AsyncClient) -> None:
    made = [(await new_thread(client, title=f"Thread {i}"))["id"] for i in range(5)]
    newest_first = made[::-1]

    async def ids(query: str) -> list[str]:
        resp = await client.get(f"/api/threads{query}")
        assert resp.status_code == 200, resp.text
        assert list(resp.json()) == ["threads"]
        return [t["id"] for t in resp.json()["threads"]]

    assert await ids("") == newest_first
    assert await ids("?limit=3&offset=0") == newest_first[:3]
    assert await ids("?limit=3&offset=3") == newest_first[3:]
    assert await ids("?limit=200&offset=5") == []
    assert await ids("?offset=10000") == []
    for bad in ("limit=0", "limit=201", "offset=-1", "offset=10001", "limit=ten", "offset=1e3"):
        resp = await client.get(f"/api/threads?{bad}")
        assert resp.status_code == 422, bad


async def test_get_unknown_malformed_and_others_threads_are_all_404(
    client: httpx.AsyncClient, threads: ThreadStore
) -> None:
    bob = await bobs_thread(threads)
    for thread_id in (uuid.uuid4(), "nonexistent-id", bob, "%00", "x" * 2000):
        for method, path in (
            ("GET", f"/api/threads/{thread_id}"),
            ("PATCH", f"/api/threads/{thread_id}"),
            ("DELETE", f"/api/threads/{thread_id}"),
            ("GET", f"/api/threads/{thread_id}/messages"),
        ):
            resp = await client.request(method, path)
            assert (resp.status_code, resp.json()) == (404, NOT_FOUND), (method, path)
        resp = await client.post(f"/api/threads/{thread_id}/messages", json={"role": "user"})
        assert (resp.status_code, resp.json()) == (404, NOT_FOUND)
    # Bob's thread and message are untouched.
    assert (await threads.get_thread(bob)).title == "New chat conversation"
    assert [m.content for m in (await threads.list_messages(bob)).items] == ["mine"]


async def test_patch_renames_and_answers_id_title_updated_at(client: httpx.AsyncClient) -> None:
    thread = await new_thread(client)
    resp = await client.patch(f"/api/threads/{thread['id']}", json={"title": "Renamed"})
    assert resp.status_code == 200
    body = resp.json()
    assert sorted(body) == ["id", "title", "updated_at"]
    assert (body["id"], body["title"]) == (thread["id"], "Renamed")
    assert body["updated_at"] > thread["updated_at"]


async def test_patch_without_a_title_keeps_it_and_touches_the_thread(
    client: httpx.AsyncClient,
) -> None:
    thread = await new_thread(client, title="Kept")
    before = thread["updated_at"]
    no_title: list[dict[str, Any] | None] = [None, {}]
    for body in no_title:
        resp = await client.patch(f"/api/threads/{thread['id']}", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json()["title"] == "Kept"
        assert resp.json()["updated_at"] > before
        before = resp.json()["updated_at"]


async def test_patch_refuses_bad_input(client: httpx.AsyncClient) -> None:
    thread = await new_thread(client, title="Kept")
    for body in ({"title": None}, {"title": ""}, {"title": 7}, {"metadata": {"a": 1}}, ["x"]):
        resp = await client.patch(f"/api/threads/{thread['id']}", json=body)
        assert resp.status_code == 422, (body, resp.text)
    got = await client.get(f"/api/threads/{thread['id']}")
    assert got.json() == thread


async def test_delete_twice_then_404(client: httpx.AsyncClient, threads: ThreadStore) -> None:
    thread = await new_thread(client)
    await client.post(f"/api/threads/{thread['id']}/messages", json={"role": "user"})
    first = await client.delete(f"/api/threads/{thread['id']}")
    assert (first.status_code, first.json()) == (200, {"message": "Thread deleted successfully"})
    second = await client.delete(f"/api/threads/{thread['id']}")
    assert (second.status_code, second.json()) == (404, NOT_FOUND)
    assert await threads.count_messages(uuid.UUID(thread["id"])) == 0


# Messages -----------------------------------------------------------------------------


async def test_messages_keep_exactly_what_was_sent(client: httpx.AsyncClient) -> None:
    thread = await new_thread(client)
    path = f"/api/threads/{thread['id']}/messages"
    sent: list[dict[str, Any]] = [
        {"role": "user", "content": ""},
        {"role": "assistant", "artifact_data": {"type": "code", "content": {"lines": [1, 2]}}},
        {"role": "assistant", "content": "x", "artifact_data": None, "metadata": None},
        {"role": "user", "content": "  spaced \n", "metadata": {"k": [True, None, 1.5]}},
        {"role": "system", "content": "ünïcødé 🙏"},
    ]
    answers = []
    for body in sent:
        resp = await client.post(path, json=body)
        assert resp.status_code == 200, resp.text
        answers.append(resp.json())
    for body, answer in zip(sent, answers, strict=True):
        assert sorted(answer) == [
            "artifact_data", "content", "created_at", "id", "metadata", "role", "thread_id"
        ]  # fmt: skip
        assert answer["thread_id"] == thread["id"]
        assert answer["role"] == body["role"]
        assert answer["content"] == body.get("content")
        assert answer["artifact_data"] == body.get("artifact_data")
        # No metadata (absent or null) is the column's empty object.
        assert answer["metadata"] == (body.get("metadata") or {})
    listed = await client.get(path)
    assert listed.json() == {"messages": answers}
    got = (await client.get(f"/api/threads/{thread['id']}")).json()
    assert got["updated_at"] == answers[-1]["created_at"]


BAD_MESSAGES: list[tuple[dict[str, Any], list[str]]] = [
    ({"role": "robot", "content": "beep"}, ["body", "role"]),
    ({"content": "no role"}, ["body", "role"]),
    ({"role": "user", "artifact_data": "just text"}, ["body", "artifact_data"]),
    ({"role": "user", "artifact_data": [1, 2]}, ["body", "artifact_data"]),
    ({"role": "user", "metadata": "text"}, ["body", "metadata"]),
    ({"role": "user", "content": "nul\x00"}, ["body", "content"]),
    ({"role": "user", "content": 5}, ["body", "content"]),
    ({"role": "user", "tool_calls": []}, ["body", "tool_calls"]),
]


async def test_messages_refuse_bad_input(client: httpx.AsyncClient) -> None:
    thread = await new_thread(client)
    for body, loc in BAD_MESSAGES:
        resp = await client.post(f"/api/threads/{thread['id']}/messages", json=body)
        assert loc in errors_at(resp), body
    assert (await client.get(f"/api/threads/{thread['id']}/messages")).json() == {"messages": []}


async def test_list_messages_reads_past_one_store_page(
    client: httpx.AsyncClient, threads: ThreadStore
) -> None:
    thread = await new_thread(client)
    tid = uuid.UUID(thread["id"])
    batch = [MessageCreate(role="user", content=str(i)) for i in range(1001)]
    await threads.add_messages(tid, batch, actor="local")
    resp = await client.get(f"/api/threads/{tid}/messages")
    assert [m["content"] for m in resp.json()["messages"]] == [str(i) for i in range(1001)]


async def test_delete_message_twice_and_others_messages(
    client: httpx.AsyncClient, threads: ThreadStore
) -> None:
    thread = await new_thread(client)
    path = f"/api/threads/{thread['id']}/messages"
    message = (await client.post(path, json={"role": "user", "content": "hi"})).json()
    first = await client.delete(f"/api/messages/{message['id']}")
    assert (first.status_code, first.json()) == (200, {"message": "Message deleted successfully"})
    gone = {"detail": "Message not found"}
    for message_id in (message["id"], uuid.uuid4(), "not-a-uuid"):
        again = await client.delete(f"/api/messages/{message_id}")
        assert (again.status_code, again.json()) == (404, gone)

    bob = await bobs_thread(threads)
    bobs = (await threads.list_messages(bob)).items[0]
    resp = await client.delete(f"/api/messages/{bobs.id}")
    assert (resp.status_code, resp.json()) == (404, gone)
    assert await threads.count_messages(bob) == 1


async def test_rows_written_through_the_native_api_read_back(
    client: httpx.AsyncClient, threads: ThreadStore
) -> None:
    """No model or provider, a non-object artifact, a tool message: shown as stored."""
    thread = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="local")
    await threads.add_message(
        thread.id, MessageCreate(role="tool", artifact_data=["a", 1]), actor="local"
    )
    got = (await client.get(f"/api/threads/{thread.id}")).json()
    assert (got["model"], got["provider"]) == (None, None)
    messages = (await client.get(f"/api/threads/{thread.id}/messages")).json()["messages"]
    assert [(m["role"], m["artifact_data"]) for m in messages] == [("tool", ["a", 1])]


async def test_native_threads_api_is_unchanged(client: httpx.AsyncClient) -> None:
    created = await client.post("/threads", json={"agent_type": "chat"})
    assert created.status_code == 201
    assert created.json()["actor"] == "local"
    listed = (await client.get("/threads")).json()
    assert sorted(listed) == ["items", "next_cursor", "total"]
    deleted = await client.delete(f"/threads/{created.json()['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")


async def test_openapi_lists_the_eight_calls_under_their_own_tag(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    calls = sorted(
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if "agentkit" in op.get("tags", [])
    )
    assert calls == [
        ("DELETE", "/api/messages/{message_id}"),
        ("DELETE", "/api/threads/{thread_id}"),
        ("GET", "/api/threads"),
        ("GET", "/api/threads/{thread_id}"),
        ("GET", "/api/threads/{thread_id}/messages"),
        ("PATCH", "/api/threads/{thread_id}"),
        ("POST", "/api/threads"),
        ("POST", "/api/threads/{thread_id}/messages"),
    ]
    api_tags = [
        op["tags"]
        for p, item in spec["paths"].items()
        if p.startswith("/api/")
        for op in item.values()
    ]
    assert api_tags == [["agentkit"]] * 8
