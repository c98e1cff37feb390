"""ChadMemoryTracer's token parts and costs: LangChain's usage_metadata details land in
llm_calls' cached / cache-write / reasoning columns, and the call is priced by the same
library rule as any other (chad_memory.prices), through PostgresStore or the HTTP client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.runnables import RunnableLambda
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from chad_memory import ApiKeyStore, PostgresStore
from chad_memory.client import AsyncChadMemoryClient
from chad_memory.integrations.langchain import ChadMemoryTracer
from chad_memory.prices import Tokens, user_price_cost
from chad_memory.schemas import LLMCallCreate, ModelPriceCreate
from chad_memory.settings import Settings
from chad_memory.stores.prices import PriceStore
from tests.pricing import builtin_cost

USAGE: UsageMetadata = {
    "input_tokens": 2000,  # LangChain: every input token, cache reads and writes included
    "output_tokens": 500,
    "total_tokens": 2500,
    "input_token_details": {"cache_read": 1200, "cache_creation": 300},
    "output_token_details": {"reasoning": 200},
}


class AnthropicFake(GenericFakeChatModel):
    """A fake chat model that names a real provider and model, as integrations do."""

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "anthropic"
        params["ls_model_name"] = "claude-sonnet-4"
        return params


def agent(usage: UsageMetadata) -> Any:
    model = AnthropicFake(messages=iter([AIMessage(content="done", usage_metadata=usage)]))
    return RunnableLambda(lambda q: str(model.invoke(q).content), name="priced_agent")


async def traced_call(tracer: ChadMemoryTracer, store: PostgresStore, usage: Any) -> Any:
    assert await agent(usage).ainvoke("go", config={"callbacks": [tracer]}) == "done"
    await tracer.aflush()
    assert tracer.failures == 0
    (run,) = (await store.list_runs()).items
    (call,) = await store.get_llm_calls(run.id)
    return run, call


async def test_usage_details_fill_the_columns_and_the_call_is_priced(
    store: PostgresStore,
) -> None:
    run, call = await traced_call(ChadMemoryTracer(store, actor="alice"), store, USAGE)
    assert (call.provider, call.model) == ("anthropic", "claude-sonnet-4")
    assert (call.prompt_tokens, call.completion_tokens, call.total_tokens) == (2000, 500, 2500)
    assert (call.cached_tokens, call.cache_write_tokens, call.reasoning_tokens) == (1200, 300, 200)
    assert call.request is not None
    assert "usage" not in call.request  # the counts live in their columns now
    assert call.cost_source == "table"
    assert call.price_ref is not None
    assert call.price_ref.startswith("genai-prices")
    assert call.cost_usd == builtin_cost(call)
    # Cache reads cost less than input, so ignoring them would have cost more.
    assert call.cost_usd < builtin_cost(call.model_copy(update={"cached_tokens": 0}))

    # The same call saved through the store directly is priced the same way.
    direct = await store.save_llm_call(
        LLMCallCreate(
            run_id=run.id,
            provider=call.provider,
            model=call.model,
            prompt_tokens=2000,
            completion_tokens=500,
            cached_tokens=1200,
            cache_write_tokens=300,
            reasoning_tokens=200,
        ),
        actor="alice",
    )
    assert (direct.cost_usd, direct.cost_source, direct.price_ref) == (
        call.cost_usd,
        call.cost_source,
        call.price_ref,
    )


async def test_a_user_price_wins_for_traced_calls(
    store: PostgresStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    price = await PriceStore(session_factory).set_price(
        ModelPriceCreate(
            provider="anthropic",
            model_pattern="claude-sonnet-*",
            starts_at=datetime.now(UTC) - timedelta(days=1),
            input_mtok=Decimal("2"),
            cached_input_mtok=Decimal("0.25"),
            cache_write_mtok=Decimal("2.5"),
            output_mtok=Decimal("10"),
        ),
        actor="alice",
    )
    _, call = await traced_call(ChadMemoryTracer(store, actor="alice"), store, USAGE)
    assert (call.cost_source, call.price_id) == ("table", price.id)
    # 500 uncached * 2 + 1200 * 0.25 + 300 * 2.5 + 500 * 10, per million tokens
    assert call.cost_usd == Decimal("0.00705")
    assert call.cost_usd == user_price_cost(price, Tokens(2000, 500, 1200, 300))


async def test_parts_larger_than_their_totals_are_kept_aside_not_stored(
    store: PostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    """LangChain sums input_tokens over every kind; a model integration that does not
    breaks the columns' rule: the call is stored without the parts, which stay in its
    request as reported, and a warning says why."""
    broken: Any = {
        "input_tokens": 100,
        "output_tokens": 10,
        "total_tokens": 110,
        "input_token_details": {"cache_read": 90, "cache_creation": 20},
        "output_token_details": {"reasoning": 4},
    }
    with caplog.at_level(logging.WARNING, logger="chad_memory.integrations.langchain"):
        _, call = await traced_call(ChadMemoryTracer(store, actor="alice"), store, broken)
    assert (call.prompt_tokens, call.completion_tokens) == (100, 10)
    assert (call.cached_tokens, call.cache_write_tokens, call.reasoning_tokens) == (0, 0, 0)
    assert call.request is not None
    kept = call.request["usage_not_stored"]
    assert (kept["cache_read"], kept["cache_write"], kept["reasoning"]) == (90, 20, 4)
    assert "exceeds prompt_tokens" in kept["reason"]
    assert "exceeds prompt_tokens" in caplog.text
    assert call.cost_source == "table"  # priced on the totals it has
    assert call.cost_usd == builtin_cost(call)


@pytest.fixture
async def app_and_key(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[Any, str]]:
    secret = (await ApiKeyStore(session_factory).create_key("carol")).secret
    app = create_app(engine=engine, settings=Settings(auth_mode="api_key"))
    async with app.router.lifespan_context(app):
        yield app, secret


async def test_through_the_http_client_the_api_prices_the_call(
    app_and_key: tuple[Any, str], store: PostgresStore
) -> None:
    app, secret = app_and_key
    async with AsyncChadMemoryClient(
        "http://t", secret, transport=httpx.ASGITransport(app=app)
    ) as client:
        run, call = await traced_call(ChadMemoryTracer(client), store, USAGE)
        assert run.actor == "carol"
        assert (call.cached_tokens, call.cache_write_tokens, call.reasoning_tokens) == (
            1200,
            300,
            200,
        )
        assert call.cost_source == "table"
        assert call.cost_usd == builtin_cost(call)
        # A client-sent cost is kept as sent, on this path too.
        sent = await client.save_llm_call(
            LLMCallCreate(run_id=run.id, model="claude-sonnet-4", cost_usd=Decimal("0.5"))
        )
        assert (sent.cost_usd, sent.cost_source) == (Decimal("0.5"), "client")
