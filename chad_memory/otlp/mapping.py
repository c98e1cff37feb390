"""An OTLP export as run history: a trace is a run, a span a step, an LLM span a call too.

Each span is checked by the library's own input models (StepFields, LLMCallFields,
RunFields, ThreadCreate), so a span breaks the same rules an HTTP or library caller
would; such a span is refused alone (OTLP partial success) and the rest are stored.

The step keeps what the columns do not: the span's remaining attributes, its resource's
attributes, the events not read as messages, links, and exact nanosecond times, under
`metadata` ({"otel": ..., "attributes": ..., "resource": ...}), so nothing sent is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status
from pydantic import ValidationError

from chad_memory.errors import InvalidInputError
from chad_memory.otlp import conventions as c
from chad_memory.otlp.values import (
    decimal_number,
    hex_id,
    key_values,
    text_value,
    timestamp,
    whole_number,
)
from chad_memory.schemas import LLMCallFields, StepFields
from chad_memory.validation import check_text, json_text
from chad_memory.vocabulary import RunStatus, StepStatus

# How many rejection reasons the partial-success message quotes (it says how many more).
MAX_QUOTED_ERRORS = 5
_DEFAULT_AGENT = "opentelemetry"
T = TypeVar("T")
_KIND_NAMES = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}


@dataclass
class MappedSpan:
    """One span, checked, ready to store as a step (and maybe an LLM call) of its trace."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    # The step's scalar fields, checked by StepFields; its JSON values (input, output,
    # metadata) are carried as the checked JSON text that is stored (`json_text`).
    step: StepFields
    input_json: str
    output_json: str
    metadata_json: str
    call: LLMCallFields | None
    agent: str | None
    resource: dict[str, Any]
    conversation_id: str | None
    user_id: str | None
    # Only for a root span: what the run takes from it.
    run_status: RunStatus | None = None
    run_error: str | None = None

    @property
    def is_root(self) -> bool:
        return self.parent_span_id is None


@dataclass
class Refusals:
    """What an export refused, with why: OTLP's partial success for spans or records."""

    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    # What is counted, in the partial-success message.
    WHAT: ClassVar[str] = "span(s)"

    def refuse(self, where: str, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_QUOTED_ERRORS:
            self.errors.append(f"{where}: {reason}")

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = self.rejected - len(self.errors)
        tail = f"; and {more} more" if more > 0 else ""
        return f"{self.rejected} {self.WHAT} rejected: " + "; ".join(self.errors) + tail


@dataclass
class MappedRequest(Refusals):
    """The spans of one export grouped by trace, and what was refused with why."""

    traces: dict[str, list[MappedSpan]] = field(default_factory=dict)


def map_request(request: ExportTraceServiceRequest) -> MappedRequest:
    """Every span of the export, checked and mapped; refused spans counted, never raised."""
    mapped = MappedRequest()
    for _ in map_in_slices(request, mapped):
        pass
    return mapped


# Spans mapped between two yields of `map_in_slices`: a few milliseconds of work.
SLICE_SPANS = 50


def map_in_slices(request: ExportTraceServiceRequest, mapped: MappedRequest) -> Iterator[None]:
    """`map_request`'s work into `mapped`, yielding after every SLICE_SPANS spans, so an
    async caller can let other tasks run between slices (`export_traces`)."""
    seen: set[tuple[str, str]] = set()
    done = 0
    for resource_spans in request.resource_spans:
        try:
            resource = key_values(resource_spans.resource.attributes, "resource attribute")
        except InvalidInputError as exc:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    mapped.refuse(_name(span), str(exc))
            continue
        for scope_spans, span in _spans(resource_spans):
            done += 1
            if done % SLICE_SPANS == 0:
                yield
            scope = {"name": scope_spans.scope.name, "version": scope_spans.scope.version}
            try:
                item = map_span(span, resource, scope)
            except InvalidInputError as exc:
                mapped.refuse(_name(span), str(exc))
                continue
            except ValidationError as exc:
                mapped.refuse(_name(span), _validation_message(exc))
                continue
            key = (item.trace_id, item.span_id)
            if key in seen:  # the same span twice in one export: stored once
                continue
            seen.add(key)
            mapped.traces.setdefault(item.trace_id, []).append(item)


def _spans(resource_spans: ResourceSpans) -> Iterable[tuple[Any, Span]]:
    for scope_spans in resource_spans.scope_spans:
        for span in scope_spans.spans:
            yield scope_spans, span


def _name(span: Span) -> str:
    return f"span {span.span_id.hex() or '(no span_id)'}"


def _validation_message(exc: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
        for e in exc.errors(include_url=False)[:3]
    ]
    return "; ".join(parts)


def map_span(span: Span, resource: dict[str, Any], scope: dict[str, str]) -> MappedSpan:
    """One span as a step (and an LLM call for an LLM span); InvalidInputError or
    ValidationError when it breaks an input rule."""
    trace_id = hex_id(span.trace_id, 16, "trace_id")
    span_id = hex_id(span.span_id, 8, "span_id")
    parent = hex_id(span.parent_span_id, 8, "parent_span_id") if span.parent_span_id else None
    attributes = key_values(span.attributes, "attribute")
    events = [
        (e.name, key_values(e.attributes, f"event {e.name!r} attribute")) for e in span.events
    ]
    operation = _read(attributes, c.OPERATION, text_value)
    inputs, outputs, other_events = c.input_output(attributes, events)

    started, ended = timestamp(span.start_time_unix_nano), timestamp(span.end_time_unix_nano)
    duration = None
    if span.start_time_unix_nano and span.end_time_unix_nano:
        if span.end_time_unix_nano < span.start_time_unix_nano:
            raise InvalidInputError("end_time_unix_nano is before start_time_unix_nano")
        duration = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
    failed = span.status.code == Status.STATUS_CODE_ERROR
    error = (span.status.message or None) if failed else None
    step_status: StepStatus = "failed" if failed else "succeeded"

    otel: dict[str, Any] = {
        "span_id": span_id,
        "kind": _KIND_NAMES.get(span.kind, span.kind),
        "scope": scope,
        "start_time_unix_nano": str(span.start_time_unix_nano),
        "end_time_unix_nano": str(span.end_time_unix_nano),
        "status_code": span.status.code,
    }
    if parent is not None:
        otel["parent_span_id"] = parent
    if span.status.message:
        otel["status_message"] = span.status.message
    if span.trace_state:
        otel["trace_state"] = span.trace_state
    if span.flags:
        otel["flags"] = span.flags
    if other_events:
        otel["events"] = [
            {
                "name": events[i][0],
                "time_unix_nano": str(span.events[i].time_unix_nano),
                "attributes": events[i][1],
            }
            for i in other_events
        ]
    if span.links:
        otel["links"] = [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "attributes": key_values(link.attributes, "link attribute"),
            }
            for link in span.links
        ]
    for name in ("dropped_attributes_count", "dropped_events_count", "dropped_links_count"):
        if getattr(span, name):
            otel[name] = getattr(span, name)

    metadata = {"otel": otel, "attributes": attributes, "resource": resource}
    step = StepFields(
        step_index=0,
        name=span.name or None,
        type=operation,
        status=step_status,
        error=error,
        started_at=started,
        completed_at=ended,
        duration_ms=duration,
    )
    call = None
    if operation in c.LLM_OPERATIONS:
        call = LLMCallFields(
            provider=_read(attributes, c.PROVIDER, text_value),
            request_model=text_value(c.request_model(attributes), "attribute gen_ai.request.model"),
            response_model=_read(attributes, c.RESPONSE_MODEL, text_value),
            prompt_tokens=_read(attributes, c.INPUT_TOKENS, whole_number) or 0,
            completion_tokens=_read(attributes, c.OUTPUT_TOKENS, whole_number) or 0,
            total_tokens=_read(attributes, c.TOTAL_TOKENS, whole_number),
            cached_tokens=_read(attributes, c.CACHE_READ_TOKENS, whole_number) or 0,
            cache_write_tokens=_read(attributes, c.CACHE_WRITE_TOKENS, whole_number) or 0,
            reasoning_tokens=_read(attributes, c.REASONING_TOKENS, whole_number) or 0,
            cost_usd=_read(attributes, c.COST, decimal_number),
            latency_ms=duration,
            started_at=started,
            status="failed" if failed else "succeeded",
            error=error,
            request=_call_details(attributes, "gen_ai.request.", c.INVOCATION_PARAMETERS),
            response=_call_details(attributes, "gen_ai.response.", None),
        )
    conversation = _read(attributes, c.CONVERSATION, text_value)
    conversation = conversation or _read(resource, c.CONVERSATION, text_value)
    user = _read(attributes, c.USER, text_value) or _read(resource, c.USER, text_value)
    if conversation is not None:
        check_text(conversation, "conversation id")
        if len(conversation) > 512:
            raise InvalidInputError("conversation id is longer than 512 characters")
    service = resource.get("service.name")
    agent = None if isinstance(service, list | dict) else text_value(service, "service.name")
    if agent is not None and not 1 <= len(agent) <= 512:
        agent = None  # service.name stays in the resource metadata, as sent
    return MappedSpan(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        step=step,
        input_json=json_text(inputs, "input"),
        output_json=json_text(outputs, "output"),
        metadata_json=json_text(metadata, "metadata"),
        call=call,
        agent=agent,
        resource=resource,
        conversation_id=conversation,
        user_id=user,
        run_status="failed" if failed else "succeeded",
        run_error=error,
    )


def _read(
    attributes: dict[str, Any], keys: tuple[str, ...], read: Callable[[Any, str], T]
) -> T | None:
    """The first of `keys` present, read as its column holds it (chad_memory.otlp.values);
    InvalidInputError naming the attribute when it cannot be."""
    key = c.first_key(attributes, keys)
    return None if key is None else read(attributes[key], f"attribute {key}")


def _call_details(attributes: dict[str, Any], prefix: str, extra: str | None) -> Any:
    """The request (or response) parameters an LLM span carries, e.g. temperature, id."""
    details = {k.removeprefix(prefix): v for k, v in attributes.items() if k.startswith(prefix)}
    if extra is not None and extra in attributes:
        details["invocation_parameters"] = c.parsed(attributes[extra], f"attribute {extra}")
    return details or None
