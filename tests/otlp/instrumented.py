"""openai-v2 (the real instrumentation) over in-memory exporters, so a test chooses what
is sent when; capture mode `event_only`, latest GenAI conventions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Instrumented:
    """openai-v2 over in-memory exporters, so the test chooses what is sent when."""

    def __init__(self) -> None:
        resource = Resource.create({"service.name": "chat-app"})
        self.spans = InMemorySpanExporter()
        self.logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))


@contextmanager
def instrumented_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[Instrumented]:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "event_only")
    found = Instrumented()
    instrumentor = OpenAIInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument(
        tracer_provider=found.tracer_provider, logger_provider=found.logger_provider
    )
    try:
        yield found
    finally:
        instrumentor.uninstrument()
        found.tracer_provider.shutdown()
        found.logger_provider.shutdown()
