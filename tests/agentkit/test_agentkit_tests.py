"""AgentKit's three Python API tests (the `test_threads.py` of its persistence plan),
ported: its `client` is our app in local mode, its `ThreadService.create_thread(db, ...)`
our ThreadStore acting for that mode's actor. Their assertions are kept as written; the
ones after a blank line are ours, checking that what was sent is what was stored."""

from __future__ import annotations

import uuid

import httpx

from chad_memory import ThreadCreate
from chad_memory.stores import ThreadStore

LOCAL = "local"


async def create_thread(
    threads: ThreadStore, agent_type: str, model: str, provider: str
) -> uuid.UUID:
    thread = await threads.create_thread(
        ThreadCreate(agent_type=agent_type, model=model, provider=provider), actor=LOCAL
    )
    return thread.id


async def test_create_thread(client: httpx.AsyncClient, threads: ThreadStore) -> None:
    response = await client.post(
        "/api/threads",
        params={"agent_type": "chat", "model": "gpt-5-mini", "provider": "azure-openai"},
    )
    assert response.status_code == 200
    data = response.json()
    assert data["agent_type"] == "chat"
    assert "id" in data

    stored = (await threads.list_threads(LOCAL)).items
    assert [(str(t.id), t.model, t.provider, t.title) for t in stored] == [
        (data["id"], "gpt-5-mini", "azure-openai", "New chat conversation")
    ]


async def test_list_threads(client: httpx.AsyncClient, threads: ThreadStore) -> None:
    thread_id = await create_thread(threads, "chat", "gpt-5-mini", "azure-openai")

    response = await client.get("/api/threads")
    assert response.status_code == 200
    data = response.json()
    assert len(data["threads"]) >= 1

    assert [t["id"] for t in data["threads"]] == [str(thread_id)]


async def test_create_message(client: httpx.AsyncClient, threads: ThreadStore) -> None:
    thread_id = await create_thread(threads, "chat", "gpt-5-mini", "azure-openai")

    response = await client.post(
        f"/api/threads/{thread_id}/messages", json={"role": "user", "content": "Hello"}
    )
    assert response.status_code == 200
    data = response.json()
    assert data["role"] == "user"
    assert data["content"] == "Hello"

    stored = (await threads.list_messages(thread_id)).items
    assert [(str(m.id), m.role, m.content) for m in stored] == [(data["id"], "user", "Hello")]
