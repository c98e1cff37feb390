"""OpenInference spans from the real SDK: a failed LLM call keeps its model (from
`llm.invocation_parameters`), flattened message keys come back as nested lists, and the
run created from the trace takes its root span's input and output."""

from __future__ import annotations

import json

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory.otlp import TraceStore, export_traces
from chad_memory.stores import PostgresStore

# As openinference-instrumentation-openai sets them on a call that failed: no
# llm.model_name (it comes from the response), the request in invocation parameters.
FAILED_LLM = {
    "openinference.span.kind": "LLM",
    "llm.provider": "openai",
    "llm.system": "openai",
    "llm.invocation_parameters": json.dumps({"model": "gpt-4o-mini", "temperature": 0}),
    "llm.input_messages.0.message.role": "user",
    "llm.input_messages.0.message.contents.0.message_content.type": "text",
    "llm.input_messages.0.message.contents.0.message_content.text": "Weather in Lisbon?",
    "llm.input_messages.1.message.role": "assistant",
    "llm.input_messages.1.message.tool_calls.0.tool_call.id": "call_1",
    "llm.input_messages.1.message.tool_calls.0.tool_call.function.name": "weather",
    "llm.input_messages.1.message.tool_calls.0.tool_call.function.arguments": '{"city": "Lisbon"}',
    "llm.input_messages.1.message.tool_calls.1.tool_call.id": "call_2",
    "llm.input_messages.1.message.tool_calls.1.tool_call.function.name": "time",
    "llm.input_messages.2.message.role": "tool",
    "llm.input_messages.2.message.tool_call_id": "call_1",
    "llm.input_messages.2.message.content": "21C",
}


def spans() -> list[object]:
    collected = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "weather-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer("openinference.instrumentation.openai", "0.1.66")
    with (
        tracer.start_as_current_span(
            "agent",
            attributes={
                "openinference.span.kind": "CHAIN",
                "input.value": json.dumps({"question": "Weather in Lisbon?"}),
                "input.mime_type": "application/json",
                "output.value": "It is 21C in Lisbon.",
                "output.mime_type": "text/plain",
            },
        ),
        tracer.start_as_current_span("ChatCompletion", attributes=FAILED_LLM) as llm,
    ):
        llm.set_status(Status(StatusCode.ERROR, "APIConnectionError: connection refused"))
    provider.shutdown()
    return list(collected.get_finished_spans())


async def test_openinference_failed_call_nested_messages_and_run_request_result(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    request = encode_spans(spans())  # type: ignore[arg-type]
    result = await export_traces(TraceStore(session_factory), request, actor="alice")
    assert (result.stored, result.rejected_spans) == (2, 0)
    store = PostgresStore(session_factory)
    [run] = (await store.list_runs()).items
    full = await store.get_run(run.id)
    assert full.request_payload == {"question": "Weather in Lisbon?"}
    assert full.result == "It is 21C in Lisbon."
    [call] = await store.get_llm_calls(run.id)
    assert (call.model, call.request_model, call.response_model) == (
        "gpt-4o-mini",
        "gpt-4o-mini",
        None,
    )
    assert (call.status, call.error) == ("failed", "APIConnectionError: connection refused")
    assert call.cost_source == "table"  # priced by its model, although no tokens came back
    assert call.price_ref is not None
    step = next(s for s in await store.get_steps(run.id) if s.id == call.step_id)
    assert step.input == [
        {"role": "user", "contents": [{"type": "text", "text": "Weather in Lisbon?"}]},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'},
                },
                {"id": "call_2", "function": {"name": "time"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
    ]
    # Read into the input, so not kept twice in the attributes.
    assert not any(k.startswith("llm.input_messages") for k in step.metadata["attributes"])
    assert step.metadata["attributes"]["llm.invocation_parameters"].startswith("{")
