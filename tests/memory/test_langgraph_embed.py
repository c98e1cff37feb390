"""The LangGraph store embeds with the deployment's embedder when told `embed="chad-memory"`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory.errors import InvalidInputError
from chad_memory.integrations.langgraph import ChadMemoryStore
from chad_memory.settings import get_settings


@pytest.fixture
def local_embedder(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("EMBEDDER", "local")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("EMBEDDER")
    get_settings.cache_clear()


async def test_index_embed_names_the_configured_embedder(
    session_factory: async_sessionmaker[AsyncSession], local_embedder: None
) -> None:
    store = ChadMemoryStore(session_factory, actor="alice", index={"embed": "chad-memory"})
    await store.aput(("facts",), "a", {"text": "Paris is the capital of France."})
    await store.aput(("facts",), "b", {"text": "The stock market fell on Tuesday."})
    hits = await store.asearch(("facts",), query="which city is France's capital?", limit=2)
    assert hits[0].key == "a"
    assert hits[0].score is not None
    assert hits[0].score > (hits[1].score or 0)


async def test_configured_embed_without_an_embedder_is_refused(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(InvalidInputError, match="EMBEDDER"):
        ChadMemoryStore(session_factory, actor="alice", index={"embed": "chad-memory"})
