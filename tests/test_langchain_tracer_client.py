"""ChadMemoryTracer writing through chad-memory's HTTP client to the real app (ASGI, real
database): the API key decides the actor, and the records match what PostgresStore
gets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore, PostgresStore
from chad_memory.client import AsyncChadMemoryClient, ChadMemoryClient
from chad_memory.integrations.langchain import ChadMemoryTracer
from chad_memory.settings import Settings
from tests.serving import serve


class Counting(httpx.ASGITransport):
    """The real app's transport, counting requests that reach it."""

    sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return await super().handle_async_request(request)


@pytest.fixture
async def app_and_key(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[Any, str]]:
    secret = (await ApiKeyStore(session_factory).create_key("carol")).secret
    app = create_app(engine=engine, settings=Settings(auth_mode="api_key"))
    async with app.router.lifespan_context(app):
        yield app, secret


def chain() -> Any:
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="4",
                    usage_metadata={"input_tokens": 7, "output_tokens": 1, "total_tokens": 8},
                )
            ]
        )
    )
    step: Any = RunnableLambda(lambda x: x, name="step")

    def body(question: str) -> str:
        for _ in range(600):
            step.invoke(1)
        return str(model.invoke(question).content)

    return RunnableLambda(body, name="client_agent")


async def test_tracer_through_the_async_client(
    app_and_key: tuple[Any, str], store: PostgresStore
) -> None:
    app, secret = app_and_key
    transport = Counting(app=app)
    async with AsyncChadMemoryClient("http://t", secret, transport=transport) as client:
        tracer = ChadMemoryTracer(client)
        assert await chain().ainvoke("2 + 2?", config={"callbacks": [tracer]}) == "4"
        await tracer.aflush()
        assert tracer.failures == 0
        # 601 steps and one LLM call: a run, two batches of steps, one call.
        assert transport.sent == 4
    (run,) = (await store.list_runs()).items
    assert run.actor == "carol"  # the key's actor, not the tracer's placeholder
    assert run.name == "client_agent"
    assert run.status == "succeeded"
    steps = await store.get_steps(run.id)
    assert len(steps) == 601
    (call,) = await store.get_llm_calls(run.id)
    assert (call.provider, call.total_tokens) == ("genericfakechatmodel", 8)


async def test_tracer_through_the_sync_client_to_a_served_app(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], store: PostgresStore
) -> None:
    """`chad-memory serve` over real HTTP; the blocking client runs on a worker thread."""
    secret = (await ApiKeyStore(session_factory).create_key("dave")).secret
    async with serve(database_url) as served:
        base = served.base
        with ChadMemoryClient(base, secret) as client:
            tracer = ChadMemoryTracer(client)
            assert await chain().ainvoke("2 + 2?", config={"callbacks": [tracer]}) == "4"
            await tracer.aflush()
            assert tracer.failures == 0
    (run,) = (await store.list_runs()).items
    assert run.actor == "dave"
    assert len(await store.get_steps(run.id)) == 601
    (call,) = await store.get_llm_calls(run.id)
    assert call.total_tokens == 8
