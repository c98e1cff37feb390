"""OpenTelemetry logs in (POST /v1/logs): GenAI events as the content of their spans.

Instrumentations that capture message content as events (opentelemetry-instrumentation-
openai-v2 with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=event_only`, older
GenAI instrumentations) send it as log records beside the spans. Each record is one of:

- a GenAI event with a span id (`gen_ai.system.message`, `gen_ai.user.message`,
  `gen_ai.assistant.message`, `gen_ai.tool.message`, `gen_ai.choice`,
  `gen_ai.client.inference.operation.details`): its messages become the input and
  output of the span's step and LLM call, whichever of span and log arrives first
  (chad_memory.stores.span_logs);
- any other record of a trace (no span id, or not a GenAI event): kept on the trace's
  run, under `metadata.otel.logs`;
- a record without a trace id belongs to no run: refused (partial success), as is one
  that breaks an input rule (a NaN attribute, an all-zero id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from chad_memory.errors import InvalidInputError
from chad_memory.otlp import conventions as c
from chad_memory.otlp.mapping import Refusals
from chad_memory.otlp.values import any_value, hex_id, key_values
from chad_memory.stores.span_logs import SpanContent
from chad_memory.validation import json_text

DETAILS_EVENT = "gen_ai.client.inference.operation.details"
# The attributes of a details event read into input / output (JSON text or structured).
_DETAILS_INPUT = (c.INPUT_MESSAGES,)
_DETAILS_OUTPUT = (c.OUTPUT_MESSAGES,)


@dataclass
class MappedLogs(Refusals):
    """Log records of one export by trace: span content, and the records the run keeps."""

    spans: dict[tuple[str, str], SpanContent] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Each trace's first resource: for a run the logs create (its agent is service.name).
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    WHAT: ClassVar[str] = "log record(s)"

    @property
    def trace_ids(self) -> list[str]:
        return sorted({t for t, _ in self.spans} | set(self.runs))


def map_logs(request: ExportLogsServiceRequest) -> MappedLogs:
    """Every record of the export, checked and sorted; refused records counted."""
    mapped = MappedLogs()
    for resource_logs in request.resource_logs:
        records = [r for scope in resource_logs.scope_logs for r in scope.log_records]
        try:
            resource = key_values(resource_logs.resource.attributes, "resource attribute")
        except InvalidInputError as exc:
            for record in records:
                mapped.refuse(_name(record), str(exc))
            continue
        for record in records:
            try:
                _map_record(mapped, record, resource)
            except InvalidInputError as exc:
                mapped.refuse(_name(record), str(exc))
    return mapped


def _name(record: LogRecord) -> str:
    return f"log record {record.event_name or '(no event name)'} of span {record.span_id.hex()}"


def _map_record(mapped: MappedLogs, record: LogRecord, resource: dict[str, Any]) -> None:
    if not record.trace_id:
        raise InvalidInputError("no trace_id: a log record is kept with its trace's run")
    trace_id = hex_id(record.trace_id, 16, "trace_id")
    span_id = hex_id(record.span_id, 8, "span_id") if record.span_id else None
    attributes = key_values(record.attributes, "attribute")
    name = record.event_name or attributes.get("event.name")
    body = any_value(record.body, "body") if record.HasField("body") else None
    content = SpanContent()
    if span_id is not None and isinstance(name, str):
        body = _read_content(name, attributes, body, content)
    kept: dict[str, Any] = {"event_name": name, "time_unix_nano": str(record.time_unix_nano)}
    if record.severity_text or record.severity_number:
        kept["severity"] = record.severity_text or record.severity_number
    if body is not None:
        kept["body"] = body
    if attributes:
        kept["attributes"] = attributes
    if span_id is not None:
        kept["span_id"] = span_id
    json_text(kept, "log record")  # refuses what JSON cannot hold, before anything is kept
    json_text([content.input, content.output], "log record content")
    mapped.resources.setdefault(trace_id, resource)
    if content.input or content.output:
        assert span_id is not None
        found = mapped.spans.setdefault((trace_id, span_id), SpanContent())
        found.input += content.input
        found.output += content.output
        found.records.append(kept)
    else:
        mapped.runs.setdefault(trace_id, []).append(kept)


def _read_content(name: str, attributes: dict[str, Any], body: Any, into: SpanContent) -> Any:
    """Messages of a GenAI event into `into`; returns the body left to keep (None when it
    was read). Read attributes are removed from `attributes`."""
    if name in c.INPUT_EVENTS:
        message = body if isinstance(body, dict) else {"content": body}
        into.input.append({"role": message.get("role", c.INPUT_EVENTS[name]), **message})
        return None
    if name in c.OUTPUT_EVENTS:
        into.output.append(body)
        return None
    if name == DETAILS_EVENT:
        for keys, side in ((_DETAILS_INPUT, into.input), (_DETAILS_OUTPUT, into.output)):
            for key in keys:
                if key in attributes:
                    value = c.parsed(attributes.pop(key))
                    side.extend(value if isinstance(value, list) else [value])
    return body
