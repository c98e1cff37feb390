"""Token parts and cost of OTLP LLM spans: the real OpenTelemetry SDK exporter against a
real `chad-memory serve`. Cache-read, cache-write and reasoning counts of the three
conventions (GenAI, OpenLLMetry, OpenInference) land in llm_calls' columns, and each call
is priced by the same rule as a call saved through the API: the span's own cost kept as
reported, else the user's price table, else genai-prices, else none."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import ApiKeyStore, PostgresStore
from chad_memory.client import ChadMemoryClient
from chad_memory.prices import Tokens, user_price_cost
from chad_memory.schemas import LLMCallCreate, ModelPriceCreate, RunFilter
from chad_memory.stores.prices import PriceStore
from tests.api.conftest import Api
from tests.otlp.test_otlp_http import CHILD, JSON, ROOT, TRACE, attr, body, span
from tests.pricing import builtin_cost
from tests.serving import serve

# One LLM span per convention family and pricing case: (span name, attributes).
SPANS: list[tuple[str, dict[str, Any]]] = [
    (
        "genai",  # current GenAI names
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.usage.input_tokens": 2000,
            "gen_ai.usage.output_tokens": 500,
            "gen_ai.usage.cache_read.input_tokens": 1200,
            "gen_ai.usage.cache_creation.input_tokens": 300,
            "gen_ai.usage.reasoning.output_tokens": 200,
        },
    ),
    (
        "openllmetry",  # OpenLLMetry: gen_ai.system, prompt/completion, flat cache names
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "o3-mini",
            "gen_ai.usage.prompt_tokens": 1000,
            "gen_ai.usage.completion_tokens": 100,
            "gen_ai.usage.cache_read_input_tokens": 500,
            "gen_ai.usage.cache_creation_input_tokens": 100,
            "gen_ai.usage.reasoning_tokens": 60,
        },
    ),
    (
        "openinference",
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "anthropic",
            "llm.model_name": "claude-3-5-haiku-latest",
            "llm.token_count.prompt": 800,
            "llm.token_count.completion": 100,
            "llm.token_count.prompt_details.cache_read": 500,
            "llm.token_count.prompt_details.cache_write": 100,
            "llm.token_count.completion_details.reasoning": 30,
        },
    ),
    (
        "user-price",  # no built-in price; the actor's own price applies
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "acme",
            "gen_ai.request.model": "acme-chat-1",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 400,
        },
    ),
    (
        "unpriced",  # no price anywhere: no cost, never a guessed one
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "acme",
            "gen_ai.request.model": "mystery-9",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 1,
        },
    ),
    (
        "reported-cost",  # the span's own cost is kept as reported
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.usage.input_tokens": 2000,
            "gen_ai.usage.output_tokens": 500,
            "gen_ai.usage.cache_read.input_tokens": 1200,
            "gen_ai.usage.cost": 0.25,
        },
    ),
]


def finished_spans() -> list[Any]:
    collected = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "cost-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer("tests.otlp.costs")
    with tracer.start_as_current_span("invoke_agent costs"):
        for name, attributes in SPANS:
            with tracer.start_as_current_span(name, attributes=attributes):
                pass
    spans = list(collected.get_finished_spans())
    provider.shutdown()
    return spans


async def test_sdk_export_fills_token_parts_and_prices_like_the_api(
    database_url: str, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    secret = (await ApiKeyStore(session_factory).create_key("alice")).secret
    acme = await PriceStore(session_factory).set_price(
        ModelPriceCreate(
            provider="acme",
            model_pattern="acme-chat-*",
            starts_at=datetime.now(UTC) - timedelta(days=1),
            input_mtok=Decimal("3"),
            cached_input_mtok=Decimal("0.3"),
            output_mtok=Decimal("15"),
        ),
        actor="alice",
    )
    spans = finished_spans()
    trace_id = format(spans[0].context.trace_id, "032x")
    async with serve(database_url) as served:
        base = served.base
        exporter = OTLPSpanExporter(
            endpoint=f"{base}/v1/traces", headers={"Authorization": f"Bearer {secret}"}
        )
        assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.SUCCESS
        exporter.shutdown()  # type: ignore[no-untyped-call]

        with ChadMemoryClient(base, secret) as client:
            [run] = client.list_runs(RunFilter(trace_id=trace_id)).items
            names = {s.id: s.name for s in client.get_steps(run.id)}
            calls = {names[c.step_id]: c for c in client.get_llm_calls(run.id) if c.step_id}
            assert set(calls) == {name for name, _ in SPANS}
            parts = {
                name: (c.prompt_tokens, c.cached_tokens, c.cache_write_tokens, c.reasoning_tokens)
                for name, c in calls.items()
            }
            assert parts == {
                "genai": (2000, 1200, 300, 200),
                "openllmetry": (1000, 500, 100, 60),
                "openinference": (800, 500, 100, 30),
                "user-price": (1000, 400, 0, 0),
                "unpriced": (10, 0, 0, 0),
                "reported-cost": (2000, 1200, 0, 0),
            }
            for name in ("genai", "openllmetry", "openinference"):
                call = calls[name]
                assert (call.cost_source, call.price_id) == ("table", None), name
                assert call.price_ref is not None
                assert call.price_ref.startswith("genai-prices"), name
                assert call.cost_usd == builtin_cost(call), name
            priced = calls["user-price"]
            assert (priced.cost_source, priced.price_id) == ("table", acme.id)
            # 600 uncached * 3 + 400 cached * 0.3 + 100 out * 15, per million tokens
            assert priced.cost_usd == Decimal("0.00342")
            assert priced.cost_usd == user_price_cost(acme, Tokens(1000, 100, 400))
            unpriced = calls["unpriced"]
            assert (unpriced.cost_usd, unpriced.cost_source, unpriced.price_ref) == (None,) * 3
            reported = calls["reported-cost"]
            assert (reported.cost_usd, reported.cost_source) == (Decimal("0.25"), "client")

            # Usage analytics (kept by triggers on llm_calls) see the parts and costs.
            report = await PostgresStore(session_factory).usage("alice", group_by="model")
            by_model = {row.group["model"]: row for row in report.rows}
            assert (by_model["o3-mini"].cached_tokens, by_model["o3-mini"].reasoning_tokens) == (
                500,
                60,
            )
            assert by_model["acme-chat-1"].cost_usd == Decimal("0.00342")
            sonnet = by_model["claude-sonnet-4"]
            assert (sonnet.cached_tokens, sonnet.cache_write_tokens) == (2400, 300)
            genai_cost = calls["genai"].cost_usd
            assert genai_cost is not None
            assert sonnet.cost_usd == genai_cost + Decimal("0.25")

            # A call with the same counts saved through the API is priced identically.
            genai = calls["genai"]
            same = client.save_llm_call(
                LLMCallCreate(
                    run_id=run.id,
                    provider=genai.provider,
                    model=genai.model,
                    prompt_tokens=genai.prompt_tokens,
                    completion_tokens=genai.completion_tokens,
                    cached_tokens=genai.cached_tokens,
                    cache_write_tokens=genai.cache_write_tokens,
                    reasoning_tokens=genai.reasoning_tokens,
                )
            )
            assert (same.cost_usd, same.cost_source, same.price_ref) == (
                genai.cost_usd,
                genai.cost_source,
                genai.price_ref,
            )

            # Recomputing costs prices table costs again and never touches reported ones.
            since = datetime.now(UTC) - timedelta(hours=1)
            await PriceStore(session_factory).recompute(since=since, actor="alice")
            again = {c.id: c for c in client.get_llm_calls(run.id)}
            assert again[reported.id].cost_usd == Decimal("0.25")
            assert again[genai.id].cost_usd == genai.cost_usd


async def test_parts_larger_than_their_totals_refuse_that_span(api: Api) -> None:
    """The columns' rule (OpenTelemetry: input tokens include cached ones) holds for spans
    as for API calls: such a span is refused by OTLP partial success, naming why; the
    other spans of the export are stored."""
    good = span(ROOT, "root")
    broken = span(
        CHILD,
        "chat",
        ROOT,
        attributes=[
            attr("gen_ai.operation.name", "chat"),
            attr("gen_ai.request.model", "gpt-4o"),
            attr("gen_ai.usage.input_tokens", 100),
            attr("gen_ai.usage.cache_read.input_tokens", 150),
        ],
    )
    answer = await api.client.post(
        "/v1/traces", json=body(good, broken), headers={**JSON, **api.alice}
    )
    assert answer.status_code == 200, answer.text
    response = json_format.ParseDict(answer.json(), ExportTraceServiceResponse())
    assert response.partial_success.rejected_spans == 1
    assert "cached_tokens + cache_write_tokens exceeds prompt_tokens" in (
        response.partial_success.error_message
    )
    runs = await api.client.get("/runs", params={"trace_id": TRACE}, headers=api.alice)
    [run] = runs.json()["items"]
    steps = (await api.client.get(f"/runs/{run['id']}/steps", headers=api.alice)).json()
    assert [s["name"] for s in steps] == ["root"]
    calls = (await api.client.get(f"/runs/{run['id']}/llm-calls", headers=api.alice)).json()
    assert calls == []
