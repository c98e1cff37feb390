"""One model, two names: a call keeps the model asked for and the one that answered;
usage counts it under the request model whichever way it was traced (OTLP or the
LangChain tracer), and pricing uses the most exact name it has a price for."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory.integrations.langchain import ChadMemoryTracer
from chad_memory.otlp import TraceStore, export_traces
from chad_memory.prices import Tokens, user_price_cost
from chad_memory.schemas import LLMCallCreate, ModelPriceCreate, RunCreate
from chad_memory.stores import PostgresStore
from chad_memory.stores.prices import PriceStore
from tests.otlp.test_otlp_order import BASE_NS, ROOT, TRACE

REQUESTED, ANSWERED = "gpt-4o-mini", "gpt-4o-mini-2024-07-18"


class OpenAIFake(GenericFakeChatModel):
    """A fake chat model that names OpenAI and the model asked for, as ChatOpenAI does."""

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        params["ls_model_name"] = REQUESTED
        return params


def _chat_span(request: ExportTraceServiceRequest, span_id: str, **attributes: Any) -> None:
    scope = request.resource_spans.add().scope_spans.add()
    span = scope.spans.add()
    span.trace_id, span.span_id, span.name = TRACE, bytes.fromhex(span_id), "chat"
    span.start_time_unix_nano, span.end_time_unix_nano = BASE_NS, BASE_NS + 10**9
    for key, value in attributes.items():
        attribute = span.attributes.add()
        attribute.key = key
        if isinstance(value, int):
            attribute.value.int_value = value
        else:
            attribute.value.string_value = value


async def test_otlp_and_tracer_calls_of_one_model_are_one_usage_row(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    store, prices = PostgresStore(session_factory), PriceStore(session_factory)
    since = datetime(2020, 1, 1, tzinfo=UTC)
    # Your price for the snapshot is the most exact; the request model's is the fallback.
    exact = await prices.set_price(
        ModelPriceCreate(
            provider="openai",
            model_pattern=ANSWERED,
            starts_at=since,
            input_mtok=Decimal("1"),
            output_mtok=Decimal("2"),
        ),
        actor="alice",
    )
    family = await prices.set_price(
        ModelPriceCreate(
            provider="openai",
            model_pattern=REQUESTED,
            starts_at=since,
            input_mtok=Decimal("10"),
            output_mtok=Decimal("20"),
        ),
        actor="alice",
    )
    request = ExportTraceServiceRequest()
    _chat_span(
        request,
        ROOT,
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": REQUESTED,
            "gen_ai.response.model": ANSWERED,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 10,
        },
    )
    assert (await export_traces(TraceStore(session_factory), request, actor="alice")).stored == 1

    answer = AIMessage(
        content="hi",
        usage_metadata={"input_tokens": 100, "output_tokens": 10, "total_tokens": 110},
        response_metadata={"model_name": ANSWERED},
    )
    tracer = ChadMemoryTracer(store, actor="alice")
    model = OpenAIFake(messages=iter([answer]))
    agent: RunnableLambda[str, str] = RunnableLambda(
        lambda q: str(model.invoke(q).content), name="agent"
    )
    assert await agent.ainvoke("hello", config={"callbacks": [tracer]}) == "hi"
    await tracer.aflush()
    assert tracer.failures == 0

    runs = (await store.list_runs()).items
    calls = [c for run in runs for c in await store.get_llm_calls(run.id)]
    assert len(calls) == 2
    tokens = Tokens(prompt=100, completion=10)
    for call in calls:
        assert (call.model, call.request_model, call.response_model) == (
            REQUESTED,
            REQUESTED,
            ANSWERED,
        )
        assert (call.cost_usd, call.price_id) == (user_price_cost(exact, tokens), exact.id)
    [row] = (await store.usage("alice", group_by="model")).rows
    assert (row.group, row.calls, row.runs) == ({"model": REQUESTED}, 2, 2)

    # Only the request model known (a failed call): the request model's price.
    run = await store.save_run(RunCreate(name="api", actor="alice"))
    failed = await store.save_llm_call(
        LLMCallCreate(
            run_id=run.id,
            provider="openai",
            request_model=REQUESTED,
            prompt_tokens=100,
            completion_tokens=10,
            status="failed",
        )
    )
    assert (failed.model, failed.response_model) == (REQUESTED, None)
    assert (failed.cost_usd, failed.price_id) == (user_price_cost(family, tokens), family.id)
    # A model sent as `model` is kept as sent; the request model still prices nothing
    # more exact than the response model.
    named = await store.save_llm_call(
        LLMCallCreate(
            run_id=run.id,
            provider="openai",
            model="my-name",
            request_model=REQUESTED,
            response_model=ANSWERED,
            prompt_tokens=100,
            completion_tokens=10,
        )
    )
    assert (named.model, named.price_id) == ("my-name", exact.id)
    # Without any user price, the built-in table prices the snapshot.
    await prices.delete_price(exact.id, actor="alice")
    await prices.delete_price(family.id, actor="alice")
    builtin = await store.save_llm_call(
        LLMCallCreate(
            run_id=run.id,
            provider="openai",
            request_model="no-such-model",
            response_model=ANSWERED,
            prompt_tokens=100,
            completion_tokens=10,
        )
    )
    assert builtin.model == "no-such-model"
    assert builtin.cost_source == "table"
    assert builtin.price_ref is not None
    assert "gpt-4o-mini" in builtin.price_ref
