"""Memory in time: a key supersedes instead of deleting, `as_of` answers what was valid
then, a memory's history lists its versions, and delete still deletes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory.settings import get_settings
from tests.api.conftest import Api


async def add(api: Api, *items: dict[str, Any]) -> list[dict[str, Any]]:
    r = await api.client.post("/memory", json={"items": list(items)}, headers=api.alice)
    assert r.status_code == 201, r.text
    return list(r.json()["items"])


async def contents(api: Api, **body: Any) -> list[str]:
    r = await api.client.post("/memory/search", json=body, headers=api.alice)
    assert r.status_code == 200, r.text
    return [h["content"] for h in r.json()["items"]]


async def test_a_key_supersedes_and_as_of_answers_what_was_true_then(words_api: Api) -> None:
    (v1,) = await add(words_api, {"content": "alice lives in lisbon", "key": "home"})
    assert v1["valid_to"] is None
    await asyncio.sleep(0.05)
    between = datetime.now(UTC).isoformat()
    await asyncio.sleep(0.05)
    (v2,) = await add(words_api, {"content": "alice lives in porto", "key": "home"})
    assert v2["id"] != v1["id"]

    assert await contents(words_api, query="where does alice live", k=5) == ["alice lives in porto"]
    assert await contents(words_api, query="where does alice live", k=5, as_of=between) == [
        "alice lives in lisbon"
    ]
    before_all = "2000-01-01T00:00:00Z"
    assert await contents(words_api, query="alice", as_of=before_all) == []

    detail = (await words_api.client.get(f"/memory/{v1['id']}", headers=words_api.alice)).json()
    history = detail["history"]
    assert [h["content"] for h in history] == ["alice lives in lisbon", "alice lives in porto"]
    assert history[0]["valid_to"] == history[1]["valid_from"]  # closed when replaced
    assert history[1]["valid_to"] is None
    assert detail["memory"]["valid_to"] is not None


async def test_re_adding_the_current_text_of_a_key_refreshes_it(words_api: Api) -> None:
    (v1,) = await add(words_api, {"content": "likes tea", "key": "drink", "metadata": {"n": 1}})
    (again,) = await add(words_api, {"content": "likes tea", "key": "drink", "metadata": {"n": 2}})
    assert again["id"] == v1["id"]
    assert again["metadata"] == {"n": 2}
    assert again["valid_to"] is None
    # A superseded text may become current again: a new version, the old one stays closed.
    await add(words_api, {"content": "likes coffee", "key": "drink"})
    (back,) = await add(words_api, {"content": "likes tea", "key": "drink"})
    assert back["id"] != v1["id"]
    detail = (await words_api.client.get(f"/memory/{back['id']}", headers=words_api.alice)).json()
    assert [h["content"] for h in detail["history"]] == ["likes tea", "likes coffee", "likes tea"]
    assert [h["valid_to"] is None for h in detail["history"]] == [False, False, True]


async def test_keys_are_per_namespace_and_per_batch_once(words_api: Api) -> None:
    await add(
        words_api,
        {"content": "red", "key": "color", "namespace": "a"},
        {"content": "blue", "key": "color", "namespace": "b"},
    )
    assert await contents(words_api, query="red blue", k=5, namespace="a") == ["red"]
    assert await contents(words_api, query="red blue", k=5, namespace="b") == ["blue"]
    twice = await words_api.client.post(
        "/memory",
        json={"items": [{"content": "x", "key": "k"}, {"content": "y", "key": "k"}]},
        headers=words_api.alice,
    )
    assert twice.status_code == 422
    assert "appears twice" in twice.json()["detail"]


async def test_bad_as_of_is_a_422(words_api: Api) -> None:
    for bad in ("yesterday", 12, "2026-13-01T00:00:00Z"):
        r = await words_api.client.post(
            "/memory/search", json={"query": "x", "as_of": bad}, headers=words_api.alice
        )
        assert r.status_code == 422, (bad, r.text)


async def test_delete_still_deletes_every_version(words_api: Api, engine: AsyncEngine) -> None:
    await add(words_api, {"content": "v one", "key": "k", "source_id": "doc"})
    await add(words_api, {"content": "v two", "key": "k", "source_id": "doc"})
    r = await words_api.client.delete("/memory?source_id=doc", headers=words_api.alice)
    assert r.json() == {"deleted": 2}
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM embeddings")) == 0


async def test_keyed_vectors_without_content_supersede_too(words_api: Api) -> None:
    dim = get_settings().embedding_dim
    first = [1.0] + [0.0] * (dim - 1)
    second = [0.0, 1.0] + [0.0] * (dim - 2)
    (v1,) = await add(words_api, {"embedding": first, "key": "pos"})
    (v2,) = await add(words_api, {"embedding": second, "key": "pos"})
    assert v1["id"] != v2["id"]
    detail = (await words_api.client.get(f"/memory/{v2['id']}", headers=words_api.alice)).json()
    assert [v["id"] for v in detail["history"]] == [v1["id"], v2["id"]]
    assert detail["history"][0]["valid_to"] is not None
    hits = await words_api.client.post(
        "/memory/search", json={"embedding": first, "k": 5}, headers=words_api.alice
    )
    assert [h["id"] for h in hits.json()["items"]] == [v2["id"]]
