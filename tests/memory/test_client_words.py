"""The Python client's memory in words against the real app (in-process) configured with the
local OpenAI-compatible embedder: text in, `query` search on behalf of a run, both
directions of provenance, `as_of` and history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore
from chad_memory.client import AsyncChadMemoryClient
from chad_memory.schemas import EmbeddingCreate, RunCreate
from chad_memory.settings import Settings
from tests.memory.fake_openai import FakeOpenAI


async def test_client_text_search_provenance_and_time(
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    fake_openai: FakeOpenAI,
) -> None:
    key = (await ApiKeyStore(session_factory).create_key("alice")).secret
    settings = Settings(
        auth_mode="api_key",
        embedder="openai",
        embedder_base_url=fake_openai.url,
        embedder_model="fake-embed",
    )
    app = create_app(engine=engine, settings=settings)
    async with (
        app.router.lifespan_context(app),
        AsyncChadMemoryClient("http://t", key, transport=httpx.ASGITransport(app=app)) as c,
    ):
        run = await c.save_run(RunCreate(actor="ignored", name="agent"))
        (old,) = await c.add_embeddings(
            [EmbeddingCreate(actor="ignored", content="office in lisbon", key="office")]
        )
        await asyncio.sleep(0.05)
        between = datetime.now(UTC)
        await asyncio.sleep(0.05)
        (new,) = await c.add_embeddings(
            [
                EmbeddingCreate(
                    actor="ignored", content="office in porto", key="office", run_id=run.id
                )
            ]
        )
        hits = await c.search(query="where is the office", k=3, run_id=run.id)
        assert [h.id for h in hits] == [new.id]
        then = await c.search(query="where is the office", k=3, as_of=between)
        assert [h.id for h in then] == [old.id]

        memory = await c.run_memory(run.id)
        assert [m.id for m in memory.written] == [new.id]
        assert [(m.id, m.reads) for m in memory.read] == [(new.id, 1)]
        detail = await c.memory_detail(new.id)
        assert [r.run_id for r in detail.read_by] == [run.id]
        assert [v.id for v in detail.history] == [old.id, new.id]
