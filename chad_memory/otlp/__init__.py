"""OpenTelemetry traces and logs in (OTLP/HTTP): decoding, the GenAI / OpenInference
mapping, ingest.

`export_traces` is what POST /v1/traces does once the body is decoded, usable without
HTTP: check the export's size (MAX_SPANS_PER_EXPORT), map every span (refusing, one by
one, those that break an input rule) and store the rest through `TraceStore` in one
transaction. See chad_memory.stores.traces for how re-sent spans, late parents and step
order are kept right.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from chad_memory.otlp.logs import MappedLogs, map_logs
from chad_memory.otlp.mapping import MappedRequest, MappedSpan, map_in_slices, map_request
from chad_memory.otlp.wire import check_span_count, span_count
from chad_memory.stores.conversations import conversation_thread_id
from chad_memory.stores.span_logs import SavedLogs, SpanLogStore
from chad_memory.stores.traces import TraceStore


@dataclass(frozen=True)
class ExportResult:
    """OTLP's answer: spans refused (with why) and, for information, what was stored."""

    stored: int
    duplicates: int
    rejected_spans: int
    error_message: str

    def response(self) -> ExportTraceServiceResponse:
        """The answer; partial_success only when spans were refused."""
        response = ExportTraceServiceResponse()
        if self.rejected_spans:
            response.partial_success.rejected_spans = self.rejected_spans
            response.partial_success.error_message = self.error_message
        return response


async def export_traces(
    store: TraceStore, request: ExportTraceServiceRequest, *, actor: str
) -> ExportResult:
    """Map and store one export; PayloadTooLargeError past MAX_SPANS_PER_EXPORT spans.

    Mapping is pure Python over every span (tens of microseconds each): it runs in slices
    with a yield to the event loop between them, so other requests are served while a
    large export is mapped.
    """
    check_span_count(span_count(request), store.database.settings.max_spans_per_export)
    mapped = MappedRequest()
    for _ in map_in_slices(request, mapped):
        await asyncio.sleep(0)
    saved = await store.save_spans(mapped.traces, actor=actor)
    for span_id, reason in saved.refused:
        mapped.refuse(f"span {span_id}", reason)
    return ExportResult(saved.stored, saved.duplicates, mapped.rejected, mapped.error_message)


@dataclass(frozen=True)
class LogExportResult:
    """OTLP's answer to a log export: records refused (with why), and what was done."""

    saved: SavedLogs
    rejected_log_records: int
    error_message: str

    def response(self) -> ExportLogsServiceResponse:
        """The answer; partial_success only when records were refused."""
        response = ExportLogsServiceResponse()
        if self.rejected_log_records:
            response.partial_success.rejected_log_records = self.rejected_log_records
            response.partial_success.error_message = self.error_message
        return response


async def export_logs(
    store: SpanLogStore, request: ExportLogsServiceRequest, *, actor: str
) -> LogExportResult:
    """What POST /v1/logs does once the body is decoded (see chad_memory.otlp.logs)."""
    mapped = map_logs(request)
    saved = await store.save_logs(mapped, actor=actor)
    return LogExportResult(saved, mapped.rejected, mapped.error_message)


__all__ = [
    "ExportResult",
    "LogExportResult",
    "MappedLogs",
    "MappedRequest",
    "MappedSpan",
    "SpanLogStore",
    "TraceStore",
    "conversation_thread_id",
    "export_logs",
    "export_traces",
    "map_logs",
    "map_request",
]
