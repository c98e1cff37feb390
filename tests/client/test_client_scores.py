"""Feedback on what the LangChain tracer recorded, through the Python client: the tracer
says which runs it stored, `client.score(...)` attaches scores, the filters find them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langchain_core.runnables import RunnableLambda
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore, PostgresStore
from chad_memory.client import AsyncChadMemoryClient
from chad_memory.errors import ForbiddenError, InvalidInputError
from chad_memory.integrations.langchain import ChadMemoryTracer
from chad_memory.schemas import RunFilter, ScoreConfigCreate, ScoreFilter
from chad_memory.settings import Settings


@pytest.fixture
async def clients(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[AsyncChadMemoryClient, AsyncChadMemoryClient]]:
    keys = ApiKeyStore(session_factory)
    carol = (await keys.create_key("carol")).secret
    dave = (await keys.create_key("dave")).secret
    app = create_app(engine=engine, settings=Settings(auth_mode="api_key"))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        AsyncChadMemoryClient("http://t", carol, transport=transport) as mine,
        AsyncChadMemoryClient("http://t", dave, transport=transport) as theirs,
    ):
        yield mine, theirs


async def test_tracer_run_ids_take_feedback_through_the_client(
    clients: tuple[AsyncChadMemoryClient, AsyncChadMemoryClient], store: PostgresStore
) -> None:
    client, other = clients
    tracer = ChadMemoryTracer(client)
    agent: Any = RunnableLambda(lambda q: f"answer to {q}", name="agent")
    first_id = uuid.uuid4()
    await agent.ainvoke("a", config={"callbacks": [tracer], "run_id": first_id})
    tagged = {"chad.experiment_id": "e-1", "chad.dataset_item_id": "i-1"}
    await agent.ainvoke("b", config={"callbacks": [tracer], "metadata": tagged})
    await tracer.aflush()
    assert tracer.failures == 0
    assert len(tracer.run_ids) == 2
    stored = {r.id for r in (await store.list_runs()).items}
    assert set(tracer.run_ids) == stored
    first = tracer.recorded[first_id]
    assert (await store.get_run(first)).request_payload == {"input": "a"}
    # LangChain's config metadata is the run's: how a tracer run joins an experiment.
    assert (await store.get_run(tracer.run_ids[1])).metadata.items() >= tagged.items()

    await client.save_score_config(
        ScoreConfigCreate(name="stars", data_type="numeric", min_value=1, max_value=5)
    )
    good = await client.score(first, "stars", 5, comment="spot on", source="human")
    assert (good.target_id, good.value, good.actor) == (first, 5, "carol")
    again = await client.score(first, "stars", 4, id=good.id)
    assert again.id == good.id
    assert again.value == 4
    keyed = await client.score(tracer.run_ids[1], "stars", 2, idempotency_key="fb-1")
    assert (
        await client.score(tracer.run_ids[1], "stars", 1, idempotency_key="fb-1")
    ).id == keyed.id
    with pytest.raises(InvalidInputError, match="stars"):
        await client.score(first, "stars", 9)
    with pytest.raises(ForbiddenError):
        await other.score(first, "stars", 1)

    low = await client.list_runs(RunFilter(score="stars<3"))
    assert [r.id for r in low.items] == [tracer.run_ids[1]]
    listed = await client.list_scores(ScoreFilter(name="stars"))
    assert sorted(s.value for s in listed.items) == [1, 4]
    await client.delete_score(good.id)
    assert [s.value for s in (await client.list_scores()).items] == [1]
