"""OTLP/HTTP bodies in and out: protobuf or OTLP/JSON, optionally gzip-compressed.

The classes are opentelemetry-proto's generated ones; nothing here parses protobuf by
hand. OTLP/JSON is protobuf's JSON mapping with the differences the OTLP specification
makes (docs/specification.md, "JSON Protobuf Encoding"): trace and span ids are hex
strings rather than base64, field names are lowerCamelCase (protobuf's parser takes
either), enums are integers, 64-bit integers may be decimal strings, and unknown fields
are ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from chad_memory.errors import PayloadTooLargeError, UndecodableBodyError

M = TypeVar("M", bound=Message)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = (PROTOBUF, JSON)
# Ids that OTLP/JSON writes as hex and protobuf's JSON mapping expects as base64.
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def media_type(content_type: str | None) -> str | None:
    """The OTLP media type named by a Content-Type header, or None if it is neither."""
    if content_type is None:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind if kind in MEDIA_TYPES else None


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """The body as sent before compression; never more than `max_bytes` of it.

    A gzip body may hold several members one after another (RFC 1952; `cat a.gz b.gz`):
    all of them are inflated, in order, as one stream. Bytes after a member that do not
    start another one are refused, never ignored. The size limit applies to the
    decompressed bytes of all members together, so a small gzip bomb is a 413 rather
    than gigabytes in memory.
    """
    kind = (encoding or "identity").strip().lower()
    if kind == "identity":
        return body
    if kind != "gzip":
        raise UndecodableBodyError(f"Content-Encoding {encoding!r} is not supported (gzip is)")
    parts: list[bytes] = []
    budget = max_bytes
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(rest, budget + 1)
        except zlib.error as exc:
            where = "" if not parts else f" (member {len(parts) + 1})"
            raise UndecodableBodyError(f"body is not valid gzip{where}: {exc}") from None
        if len(data) > budget or inflater.unconsumed_tail:
            raise PayloadTooLargeError(
                f"decompressed body is larger than {max_bytes} bytes (MAX_BODY_BYTES)"
            )
        if not inflater.eof:
            raise UndecodableBodyError("body is not valid gzip: the stream is truncated")
        parts.append(data)
        budget -= len(data)
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)


def _hex_ids_to_base64(value: Any) -> None:
    """Rewrite OTLP/JSON's hex ids in place as the base64 that protobuf's parser reads."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _ID_FIELDS and isinstance(item, str):
                try:
                    value[key] = base64.b64encode(bytes.fromhex(item)).decode()
                except ValueError:
                    raise UndecodableBodyError(f"{key} {item[:64]!r} is not hex") from None
            else:
                _hex_ids_to_base64(item)
    elif isinstance(value, list):
        for item in value:
            _hex_ids_to_base64(item)


def check_span_count(count: int, max_spans: int) -> None:
    """PayloadTooLargeError (413) for an export of more than `max_spans` spans."""
    if count > max_spans:
        raise PayloadTooLargeError(
            f"export holds {count} spans; at most {max_spans} (MAX_SPANS_PER_EXPORT)"
        )


def span_count(request: ExportTraceServiceRequest) -> int:
    return sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)


def _json_span_count(document: dict[str, Any]) -> int:
    """Spans in an OTLP/JSON document, counted before protobuf's (slow) JSON parser runs;
    a shape that is not OTLP counts 0 here and is refused by the parser."""
    count = 0
    for resource in _items(document, "resourceSpans", "resource_spans"):
        for scope in _items(resource, "scopeSpans", "scope_spans"):
            count += len(_items(scope, "spans", "spans"))
    return count


def _items(node: Any, camel: str, snake: str) -> list[Any]:
    found = node.get(camel, node.get(snake)) if isinstance(node, dict) else None
    return found if isinstance(found, list) else []


def decode_request(
    body: bytes,
    kind: str,
    max_spans: int | None = None,
    *,
    into: type[M] = ExportTraceServiceRequest,  # type: ignore[assignment]
) -> M:
    """An export request (traces unless `into` says which) from a protobuf or OTLP/JSON
    body (already inflated); for traces, PayloadTooLargeError past `max_spans` spans,
    before the spans are mapped."""
    request = into()
    count_spans = max_spans is not None and isinstance(request, ExportTraceServiceRequest)
    if kind == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise UndecodableBodyError(f"body is not an OTLP protobuf message: {exc}") from None
        if count_spans:
            assert max_spans is not None
            assert isinstance(request, ExportTraceServiceRequest)
            check_span_count(span_count(request), max_spans)
        return request
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise UndecodableBodyError(f"body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise UndecodableBodyError("an OTLP/JSON body is a JSON object")
    if count_spans:
        assert max_spans is not None
        check_span_count(_json_span_count(document), max_spans)
    _hex_ids_to_base64(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, RecursionError, ValueError) as exc:
        raise UndecodableBodyError(f"body is not OTLP/JSON: {str(exc)[:300]}") from None
    return request


# gRPC's code for an HTTP error status, as OTLP/HTTP's Status bodies carry one.
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 413: 8, 415: 3, 422: 3, 429: 8, 503: 14}


def read_export(
    body: bytes, kind: str, encoding: str | None, *, max_bytes: int, max_spans: int
) -> ExportTraceServiceRequest:
    """Inflate and decode one export within both bounds. CPU-bound (about a second for a
    10 MB body): callers on an event loop run it in a thread (`asyncio.to_thread`)."""
    return decode_request(decompress(body, encoding, max_bytes), kind, max_spans)


def read_logs(
    body: bytes, kind: str, encoding: str | None, *, max_bytes: int
) -> ExportLogsServiceRequest:
    """Inflate and decode one logs export within MAX_BODY_BYTES; CPU-bound, as
    `read_export`."""
    return decode_request(
        decompress(body, encoding, max_bytes), kind, into=ExportLogsServiceRequest
    )


def encode_status(http_status: int, message: str, kind: str) -> bytes:
    """A google.rpc.Status for an error answer, in the request's encoding.

    OTLP/HTTP: "The response body for all HTTP 4xx and HTTP 5xx responses MUST be a
    Protobuf-encoded Status message" (JSON-encoded for OTLP/JSON requests).
    """
    code = _GRPC_CODES.get(http_status, 13 if http_status >= 500 else 2)  # INTERNAL, UNKNOWN
    status = Status(code=code, message=message)
    if kind == PROTOBUF:
        encoded: bytes = status.SerializeToString()
        return encoded
    return json.dumps(json_format.MessageToDict(status)).encode()


def encode_response(rejected_spans: int, error_message: str, kind: str) -> bytes:
    """ExportTraceServiceResponse in the request's encoding; partial_success only if needed."""
    response = ExportTraceServiceResponse()
    if rejected_spans or error_message:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = error_message
    return encode_message(response, kind)


def encode_message(message: Message, kind: str) -> bytes:
    """An export response in the request's encoding."""
    if kind == PROTOBUF:
        encoded: bytes = message.SerializeToString()
        return encoded
    return json.dumps(json_format.MessageToDict(message)).encode()
