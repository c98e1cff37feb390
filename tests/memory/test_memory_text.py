"""Memory in words over HTTP: text in, `query` search, outages that write nothing, one row
per text in a namespace; with the local fake OpenAI-compatible server and the real local
model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chad_memory.settings import get_settings
from tests.api.conftest import Api
from tests.memory.conftest import serve
from tests.memory.fake_openai import FakeOpenAI

DIM = get_settings().embedding_dim


async def rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM embeddings")) or 0)


async def add(api: Api, *items: dict[str, Any], who: str = "alice") -> Any:
    headers = api.alice if who == "alice" else api.bob
    return await api.client.post("/memory", json={"items": list(items)}, headers=headers)


async def search(api: Api, **body: Any) -> Any:
    return await api.client.post("/memory/search", json=body, headers=api.alice)


async def test_text_in_text_out(words_api: Api, fake_openai: FakeOpenAI) -> None:
    added = await add(
        words_api,
        {"content": "the cat sat on the mat"},
        {"content": "stock prices fell today"},
        {"content": "dogs chase cats", "embedding": None, "namespace": "pets"},
    )
    assert added.status_code == 201, added.text
    assert [i["content"] for i in added.json()["items"]] == [
        "the cat sat on the mat",
        "stock prices fell today",
        "dogs chase cats",
    ]
    assert len(fake_openai.requests) == 1  # one batch for the three texts
    found = await search(words_api, query="where is the cat", k=2)
    assert found.status_code == 200, found.text
    hits = found.json()["items"]
    assert hits[0]["content"] == "the cat sat on the mat"
    assert hits[0]["score"] > hits[1]["score"]
    # Vectors are still accepted, in both directions.
    vector = [1.0] + [0.0] * (DIM - 1)
    assert (await add(words_api, {"content": "mine", "embedding": vector})).status_code == 201
    by_vector = await search(words_api, embedding=vector, k=1)
    assert by_vector.json()["items"][0]["content"] == "mine"


async def test_without_an_embedder_text_alone_is_a_422(api: Api) -> None:
    added = await add(api, {"content": "no vector"})
    assert added.status_code == 422
    assert "no embedder is configured" in added.json()["detail"]
    found = await search(api, query="anything")
    assert found.status_code == 422
    assert "embedder" in found.json()["detail"]
    neither = await add(api, {"source_id": "s"})
    assert neither.status_code == 422
    assert (await search(api, k=3)).status_code == 422


@pytest.mark.parametrize(
    ("mode", "status", "words"),
    [
        ("busy", 503, "busy"),
        ("slow", 503, "timed out"),
        ("down", 503, "unreachable"),
        ("error", 502, "model 'nope' does not exist"),
    ],
)
async def test_embedder_outages_answer_and_write_nothing(
    words_api: Api, fake_openai: FakeOpenAI, engine: AsyncEngine, mode: str, status: int, words: str
) -> None:
    fake_openai.mode = mode
    added = await add(
        words_api, {"content": "a", "embedding": [1.0] * DIM}, {"content": "needs embedding"}
    )
    assert added.status_code == status, added.text
    assert words in added.json()["detail"]
    assert "fake-embed" in added.json()["detail"]  # the embedder is named
    if status == 503:
        assert added.headers["Retry-After"] == ("7" if mode == "busy" else "1")
    assert await rows(engine) == 0  # nothing half-written
    found = await search(words_api, query="x")
    assert found.status_code == status


async def test_same_text_same_namespace_is_stored_once(words_api: Api, engine: AsyncEngine) -> None:
    first = (await add(words_api, {"content": "likes tea", "metadata": {"v": 1}})).json()
    again = await add(
        words_api,
        {"content": "likes tea", "metadata": {"v": 2}, "source_id": "chat-9"},
        {"content": "likes tea", "namespace": "other"},
        {"content": "likes coffee"},
        {"content": "likes coffee", "metadata": {"v": 3}},
    )
    assert again.status_code == 201, again.text
    items = again.json()["items"]
    assert items[0]["id"] == first["items"][0]["id"]  # refreshed, not duplicated
    assert items[0]["metadata"] == {"v": 2}
    assert items[0]["source_id"] == "chat-9"
    assert items[1]["id"] != items[0]["id"]  # another namespace is another memory
    assert items[2]["id"] == items[3]["id"]  # one batch, one text: one row
    assert items[3]["metadata"] == {"v": 3}
    assert await rows(engine) == 3
    # Bob's identical text is bob's own row.
    assert (await add(words_api, {"content": "likes tea"}, who="bob")).status_code == 201
    assert await rows(engine) == 4


@pytest.fixture
async def local_api(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Api]:
    async for api in serve(engine, session_factory, embedder="local"):
        yield api


async def test_the_local_model_end_to_end(local_api: Api) -> None:
    added = await add(
        local_api,
        {"content": "Adults need about fifty grams of protein a day."},
        {"content": "The stock market fell sharply on Tuesday."},
        {"content": "Paris is the capital of France."},
    )
    assert added.status_code == 201, added.text
    found = await search(local_api, query="what is France's capital city?", k=3)
    assert found.status_code == 200, found.text
    assert found.json()["items"][0]["content"] == "Paris is the capital of France."
