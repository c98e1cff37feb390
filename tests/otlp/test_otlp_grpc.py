"""OTLP over gRPC with the SDK's own gRPC exporters against `chad-memory serve
--otlp-grpc-port`: the same mapping as OTLP/HTTP, the key from the call's metadata."""

from __future__ import annotations

import asyncio

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.common import free_port
from chad_memory import ApiKeyStore
from chad_memory.client import ChadMemoryClient
from chad_memory.schemas import RunFilter
from tests.otlp.fake_openai import chat, fake_openai
from tests.otlp.instrumented import Instrumented
from tests.otlp.test_otlp_export import agent_trace
from tests.serving import serve


async def test_sdk_grpc_exporters_to_serve(
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    instrumented: Instrumented,
) -> None:
    secret = (await ApiKeyStore(session_factory).create_key("alice")).secret
    good, _ = agent_trace()
    with fake_openai() as base_url:
        chat(base_url, "over gRPC")
    [chat_span] = instrumented.spans.get_finished_spans()
    chat_logs = instrumented.logs.get_finished_logs()
    port = free_port()
    async with serve(database_url, args=["--otlp-grpc-port", str(port)]) as served:
        endpoint = f"127.0.0.1:{port}"
        metadata = (("authorization", f"Bearer {secret}"),)
        spans = OTLPSpanExporter(endpoint=endpoint, insecure=True, headers=metadata)
        logs = OTLPLogExporter(endpoint=endpoint, insecure=True, headers=metadata)
        assert await asyncio.to_thread(spans.export, good) == SpanExportResult.SUCCESS
        # Logs first: the content waits for its span, as over HTTP.
        assert (await asyncio.to_thread(logs.export, chat_logs)).name == "SUCCESS"
        assert await asyncio.to_thread(spans.export, [chat_span]) == SpanExportResult.SUCCESS
        stranger = OTLPSpanExporter(
            endpoint=endpoint, insecure=True, headers=(("authorization", "Bearer nope"),)
        )
        assert await asyncio.to_thread(stranger.export, good) == SpanExportResult.FAILURE
        for exporter in (spans, logs, stranger):
            exporter.shutdown()

        with ChadMemoryClient(served.base, secret) as client:
            trace_id = format(good[0].context.trace_id, "032x")
            [run] = client.list_runs(RunFilter(trace_id=trace_id)).items
            assert (run.name, run.agent) == ("invoke_agent travel", "travel-agent")
            assert [s.name for s in client.get_steps(run.id)] == [
                "invoke_agent travel",
                "chat gpt-4o",
                "execute_tool search_flights",
                "ChatAnthropic",
            ]
            assert {c.model for c in client.get_llm_calls(run.id)} == {
                "gpt-4o",
                "claude-sonnet-4",
            }
            chat_trace = format(chat_span.context.trace_id, "032x")
            [chat_run] = client.list_runs(RunFilter(trace_id=chat_trace)).items
            [step] = client.get_steps(chat_run.id)
            assert step.input is not None
            assert step.input[-1]["parts"][0]["content"] == "over gRPC"
            assert len(client.list_runs(RunFilter()).items) == 2  # the stranger stored nothing
