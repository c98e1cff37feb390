"""POST /v1/logs with the real SDK exporters and the real openai-v2 instrumentation: a
chat call's content, sent only as log events (capture mode `event_only`), lands on its
span's step and LLM call whether the logs or the spans arrive first."""

from __future__ import annotations

import asyncio

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chad_memory import ApiKeyStore
from chad_memory.client import ChadMemoryClient
from chad_memory.schemas import RunFilter
from tests.otlp.fake_openai import RESPONSE_MODEL, chat, fake_openai
from tests.otlp.instrumented import Instrumented
from tests.serving import serve


async def test_openai_v2_event_only_content_lands_on_steps_and_calls(
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    instrumented: Instrumented,
) -> None:
    secret = (await ApiKeyStore(session_factory).create_key("alice")).secret
    with fake_openai() as base_url:
        chat(base_url, "logs first")
        logs_first = (
            instrumented.spans.get_finished_spans(),
            instrumented.logs.get_finished_logs(),
        )
        instrumented.spans.clear()
        instrumented.logs.clear()
        chat(base_url, "spans first")
        spans_first = (
            instrumented.spans.get_finished_spans(),
            instrumented.logs.get_finished_logs(),
        )
    for spans, logs in (logs_first, spans_first):
        assert len(spans) == 1
        assert [log.log_record.event_name for log in logs] == [
            "gen_ai.client.inference.operation.details"
        ]
        assert spans[0].attributes is not None
        assert "gen_ai.input.messages" not in spans[0].attributes  # content only in logs

    async with serve(database_url) as served:
        auth = {"Authorization": f"Bearer {secret}"}
        span_exporter = OTLPSpanExporter(
            endpoint=f"{served.base}/v1/traces", headers=auth, compression=Compression.Gzip
        )
        log_exporter = OTLPLogExporter(
            endpoint=f"{served.base}/v1/logs", headers=auth, compression=Compression.Gzip
        )
        sends = [
            lambda: log_exporter.export(logs_first[1]),
            lambda: span_exporter.export(logs_first[0]),
            lambda: span_exporter.export(spans_first[0]),
            lambda: log_exporter.export(spans_first[1]),
        ]
        for send in sends:
            result = await asyncio.to_thread(send)
            assert result.name == "SUCCESS", result
        span_exporter.shutdown()  # type: ignore[no-untyped-call]
        log_exporter.shutdown()  # type: ignore[no-untyped-call]

        with ChadMemoryClient(served.base, secret) as client:
            for spans, question in ((logs_first[0], "logs first"), (spans_first[0], "spans first")):
                trace_id = format(spans[0].context.trace_id, "032x")
                [run] = client.list_runs(RunFilter(trace_id=trace_id)).items
                [step] = client.get_steps(run.id)
                assert step.input == [
                    {"role": "system", "parts": [{"type": "text", "content": "Answer briefly"}]},
                    {"role": "user", "parts": [{"type": "text", "content": question}]},
                ]
                assert step.output == [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": f"Answer to: {question}"}],
                        "finish_reason": "stop",
                    }
                ]
                [record] = step.metadata["otel"]["logs"]
                assert record["event_name"] == "gen_ai.client.inference.operation.details"
                assert "gen_ai.input.messages" not in record["attributes"]  # read, not kept twice
                [call] = client.get_llm_calls(run.id)
                assert call.request is not None
                assert call.response is not None
                assert call.request["input_messages"] == step.input
                assert call.response["output_messages"] == step.output
                assert (call.model, call.response_model) == ("gpt-4o-mini", RESPONSE_MODEL)
                assert (call.prompt_tokens, call.completion_tokens) == (12, 3)
                # The run from the trace: its root (this span) gives request and result.
                full = client.get_run(run.id)
                assert (full.request_payload, full.result) == (step.input, step.output)
