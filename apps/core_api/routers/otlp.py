"""POST /v1/traces and /v1/logs: OTLP/HTTP export (protobuf or JSON, optionally gzip).

This router only speaks HTTP: it checks the media type, inflates and decodes the body,
and encodes the answer in the request's encoding. Mapping and storage are the library's
(`chad_memory.otlp.export_traces`, `export_logs`). /v1/metrics answers 404 as a Status:
metrics are not stored, and an exporter should hear "not here", not "wrong media type".
Status codes follow the OTLP/HTTP specification: 200
(with `partial_success` when some spans were refused), 400 for a body that is not OTLP,
413 over MAX_BODY_BYTES (compressed or not) or MAX_SPANS_PER_EXPORT spans, 415 for
another media type, 503 with
Retry-After while the database is down (exporters retry 429/502/503/504 only). Error
bodies are google.rpc.Status in the request's encoding (OtlpStatusMiddleware).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, Response

from apps.core_api.auth import CurrentCaller
from apps.core_api.schemas import Problem
from chad_memory.otlp import export_logs, export_traces
from chad_memory.otlp.wire import (
    MEDIA_TYPES,
    encode_message,
    encode_response,
    media_type,
    read_export,
    read_logs,
)
from chad_memory.settings import Settings

# Routes whose error answers are google.rpc.Status (apps/core_api/middleware.py) and whose
# bodies are not JSON (the body guard checks only their size).
PATHS = frozenset({"/v1/traces", "/v1/logs", "/v1/metrics"})


# Error answers: a Status in the request's encoding; a request that is neither OTLP
# encoding gets the usual {"detail": ...}.
_STATUS_CONTENT = {
    "application/json": {
        "schema": {
            "anyOf": [
                {
                    "title": "Status",
                    "description": "google.rpc.Status: gRPC's code and why",
                    "type": "object",
                    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                },
                {"$ref": "#/components/schemas/Problem"},
            ]
        }
    },
    "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _STATUS_CONTENT}


router = APIRouter(tags=["otlp"])


def _otlp_body(message: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES
        },
        "description": f"An {message}, as protobuf or OTLP/JSON",
    }


_OTLP_BODY = _otlp_body("ExportTraceServiceRequest")


def _unsupported_media() -> Response:
    return Response(
        content=b'{"detail":"Content-Type must be application/x-protobuf or application/json"}',
        status_code=415,
        media_type="application/json",
    )


def _responses(message: str, refused: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": f"{message} in the request's encoding; "
            f"partial_success names refused {refused}",
            "content": {media: {} for media in MEDIA_TYPES},
        },
        400: _error("not an OTLP body, or bad gzip"),
        401: _error("missing, unknown or revoked API key"),
        413: _error("body over MAX_BODY_BYTES once inflated, or over MAX_SPANS_PER_EXPORT spans"),
        415: {"model": Problem, "description": "neither application/x-protobuf nor JSON"},
        503: _error("database unavailable; retry after Retry-After"),
    }


@router.post(
    "/v1/traces",
    response_class=Response,
    openapi_extra={"requestBody": _OTLP_BODY},
    responses=_responses("ExportTraceServiceResponse", "spans"),
)
async def export(
    request: Request,
    caller: CurrentCaller,
    content_encoding: Annotated[str | None, Header(alias="Content-Encoding")] = None,
) -> Response:
    """Store every span as a step of its trace's run (one run per trace and actor)."""
    kind = media_type(request.headers.get("content-type"))
    if kind is None:
        return _unsupported_media()
    settings: Settings = request.app.state.settings
    # Inflating and decoding a large body takes a while: off the event loop.
    export_request = await asyncio.to_thread(
        read_export,
        await request.body(),
        kind,
        content_encoding,
        max_bytes=settings.max_body_bytes,
        max_spans=settings.max_spans_per_export,
    )
    result = await export_traces(caller.traces, export_request, actor=caller.actor)
    return Response(
        content=encode_response(result.rejected_spans, result.error_message, kind),
        media_type=kind,
    )


@router.post(
    "/v1/logs",
    response_class=Response,
    openapi_extra={"requestBody": _otlp_body("ExportLogsServiceRequest")},
    responses=_responses("ExportLogsServiceResponse", "log records"),
)
async def export_log_records(
    request: Request,
    caller: CurrentCaller,
    content_encoding: Annotated[str | None, Header(alias="Content-Encoding")] = None,
) -> Response:
    """GenAI events onto their spans' steps and LLM calls; other records onto their run."""
    kind = media_type(request.headers.get("content-type"))
    if kind is None:
        return _unsupported_media()
    settings: Settings = request.app.state.settings
    decoded = await asyncio.to_thread(
        read_logs,
        await request.body(),
        kind,
        content_encoding,
        max_bytes=settings.max_body_bytes,
    )
    result = await export_logs(caller.logs, decoded, actor=caller.actor)
    return Response(content=encode_message(result.response(), kind), media_type=kind)


@router.post("/v1/metrics", include_in_schema=False)
async def metrics_not_stored() -> Response:
    raise HTTPException(404, "metrics are not stored here: send OTLP traces and logs")
