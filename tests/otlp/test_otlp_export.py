"""The real OpenTelemetry SDK and OTLP/HTTP exporter against a real `chad-memory serve`,
read back through the real sync client (chad_memory.client.ChadMemoryClient)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from decimal import Decimal

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import ApiKeyStore
from chad_memory.client import ChadMemoryClient
from chad_memory.schemas import RunFilter
from tests.serving import ROOT, serve


def readme_client_block() -> str:
    """The README's Python client tour, as a newcomer would paste it."""
    section = (ROOT / "README.md").read_text().split("## Python client", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    assert len(blocks) == 1, "README's client tour lost its python block"
    return str(blocks[0])


def agent_trace() -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    """A root agent span, a GenAI chat span, a tool span with an OpenInference LLM span
    inside it; and a second trace whose root failed. Spans as the SDK finished them."""
    collected = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "travel-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer("tests.otlp", "1.0")
    messages_in = [{"role": "user", "parts": [{"type": "text", "content": "Fly me to Lisbon"}]}]
    messages_out = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Searching flights"}],
            "finish_reason": "tool_call",
        }
    ]
    with tracer.start_as_current_span(
        "invoke_agent travel",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "travel",
            "gen_ai.conversation.id": "conv-42",
        },
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 20,
                "gen_ai.usage.cache_read.input_tokens": 64,
                "gen_ai.input.messages": json.dumps(messages_in),
                "gen_ai.output.messages": json.dumps(messages_out),
            },
        ):
            time.sleep(0.002)
        with (
            tracer.start_as_current_span(
                "execute_tool search_flights",
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
            ),
            tracer.start_as_current_span(
                "ChatAnthropic",
                attributes={
                    "openinference.span.kind": "LLM",
                    "llm.provider": "anthropic",
                    "llm.model_name": "claude-sonnet-4",
                    "llm.token_count.prompt": 200,
                    "llm.token_count.completion": 40,
                    "llm.token_count.completion_details.reasoning": 12,
                    "llm.cost.total": 0.0012,
                    "input.value": "Cheapest flight to Lisbon?",
                    "input.mime_type": "text/plain",
                    "output.value": '{"flight": "TP1351"}',
                    "output.mime_type": "application/json",
                },
            ),
        ):
            time.sleep(0.002)
    good = list(collected.get_finished_spans())
    collected.clear()
    with tracer.start_as_current_span("invoke_agent travel") as failing:
        failing.set_status(Status(StatusCode.ERROR, "agent crashed"))
    failed = list(collected.get_finished_spans())
    provider.shutdown()
    return good, failed


async def test_sdk_exporter_to_serve_maps_a_trace(
    database_url: str, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    keys = ApiKeyStore(session_factory)
    secret = (await keys.create_key("alice")).secret
    bob = (await keys.create_key("bob")).secret
    good, failed = agent_trace()
    chat, anthropic, tool, root = good  # the order in which they ended
    trace_id = format(root.context.trace_id, "032x")
    async with serve(database_url) as served:
        base, port = served.base, served.port
        exporter = OTLPSpanExporter(
            endpoint=f"{base}/v1/traces",
            headers={"Authorization": f"Bearer {secret}"},
            compression=Compression.Gzip,
        )
        # In three exports, children before their parents, then everything again (a retry).
        for batch in ([anthropic], [chat, tool], [root], good, failed):
            assert await asyncio.to_thread(exporter.export, batch) == SpanExportResult.SUCCESS
        exporter.shutdown()  # type: ignore[no-untyped-call]

        with ChadMemoryClient(base, secret) as client:
            [run] = client.list_runs(RunFilter(trace_id=trace_id)).items
            assert (run.name, run.status, run.agent) == (
                "invoke_agent travel",
                "succeeded",
                "travel-agent",
            )
            assert run.completed_at is not None
            conversation = client.list_runs(RunFilter(conversation_id="conv-42")).items
            assert [r.id for r in conversation] == [run.id]

            steps = client.get_steps(run.id)
            assert [(s.step_index, s.name) for s in steps] == [
                (0, "invoke_agent travel"),
                (1, "chat gpt-4o"),
                (2, "execute_tool search_flights"),
                (3, "ChatAnthropic"),
            ]
            root_step, chat_step, tool_step, llm_step = steps
            assert [s.parent_step_id for s in steps] == [
                None,
                root_step.id,
                root_step.id,
                tool_step.id,
            ]
            assert [s.type for s in steps] == ["invoke_agent", "chat", "execute_tool", "LLM"]
            assert chat.attributes is not None
            sent_messages = chat.attributes["gen_ai.input.messages"]
            assert isinstance(sent_messages, str)
            assert chat_step.input == json.loads(sent_messages)
            assert chat_step.output is not None
            assert chat_step.output[0]["finish_reason"] == "tool_call"
            assert llm_step.input == "Cheapest flight to Lisbon?"
            assert llm_step.output == {"flight": "TP1351"}
            # Attributes read into columns stay in the step's metadata too, as sent.
            assert chat_step.metadata["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 64
            reasoning = llm_step.metadata["attributes"]
            assert reasoning["llm.token_count.completion_details.reasoning"] == 12
            assert root_step.metadata["resource"]["service.name"] == "travel-agent"
            assert root_step.metadata["otel"]["scope"] == {"name": "tests.otlp", "version": "1.0"}

            calls = {c.provider: c for c in client.get_llm_calls(run.id)}
            assert set(calls) == {"openai", "anthropic"}
            openai, anthropic_call = calls["openai"], calls["anthropic"]
            # Usage names the request model; the snapshot that answered is kept beside it.
            assert (openai.model, openai.response_model) == ("gpt-4o", "gpt-4o-2024-08-06")
            assert (openai.prompt_tokens, openai.completion_tokens) == (100, 20)
            assert (openai.cached_tokens, openai.reasoning_tokens) == (64, 0)
            assert openai.step_id == chat_step.id
            # No cost on the span: priced like any other call (36 uncached, 64 cached, 20 out).
            assert (openai.cost_source, openai.cost_usd) == ("table", Decimal("0.00037"))
            assert anthropic_call.model == "claude-sonnet-4"
            assert (anthropic_call.prompt_tokens, anthropic_call.completion_tokens) == (200, 40)
            assert anthropic_call.reasoning_tokens == 12
            # The span's own cost is kept as reported.
            assert (anthropic_call.cost_source, anthropic_call.cost_usd) == (
                "client",
                Decimal("0.0012"),
            )
            assert anthropic_call.latency_ms is not None
            assert anthropic_call.latency_ms >= 2

            stats = client.get_run_stats(run.id)
            assert (stats.step_count, stats.llm_call_count, stats.total_tokens) == (4, 2, 360)
            assert stats.cost_usd == Decimal("0.00157")

            failed_trace = format(failed[0].context.trace_id, "032x")
            [broken] = client.list_runs(RunFilter(trace_id=failed_trace)).items
            assert (broken.status, client.get_run(broken.id).error) == ("failed", "agent crashed")
            [broken_step] = client.get_steps(broken.id)
            assert (broken_step.status, broken_step.error) == ("failed", "agent crashed")

        # The README's client tour, twice: the second time replays the same run.
        for _ in range(2):
            tour = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                readme_client_block(),
                env={**os.environ, "ALICE": secret, "BOB": bob, "PORT": str(port)},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(tour.communicate(), timeout=60)
            assert tour.returncode == 0, err.decode()[-2000:]
            lines = out.decode().splitlines()
            assert lines[:2] == ["succeeded", "1500"]
            assert lines[2].startswith("403 GET /runs/")
            assert lines[2].endswith("belongs to another actor")
