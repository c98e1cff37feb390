"""OTLP over gRPC (`chad-memory serve --otlp-grpc-port 4317`): the collector's and many
SDKs' default transport, beside OTLP/HTTP.

Like the HTTP routes, this only speaks the transport: credentials come from the call's
metadata (`authorization: Bearer <key>`, or `x-actor-id` in trusted_header mode) and go
through the same rule (`auth.actor_for`); requests go to the same library entries
(`export_traces`, `export_logs`) in the same app's stores, on the same event loop. gRPC
inflates gzip itself; a message over MAX_BODY_BYTES is refused by gRPC before it is read
(RESOURCE_EXHAUSTED). Errors are gRPC statuses chosen as the OTLP specification asks:
UNAVAILABLE while the database is down (exporters retry it), UNAUTHENTICATED,
INVALID_ARGUMENT; a refused span or record is partial success, as over HTTP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc import aio
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.datastructures import State

from apps.core_api.auth import NotAuthenticated, actor_for
from chad_memory.errors import DatabaseUnavailableError, InvalidInputError
from chad_memory.otlp import export_logs, export_traces
from chad_memory.settings import Settings

R = TypeVar("R")


async def _actor(state: State, context: aio.ServicerContext[Any, Any]) -> str:
    metadata = {key.lower(): value for key, value in context.invocation_metadata() or ()}
    peer = context.peer()  # "ipv4:127.0.0.1:54321", "ipv6:[::1]:54321"
    host = peer.split(":", 1)[1].rsplit(":", 1)[0].strip("[]") if ":" in peer else None
    try:
        return await actor_for(
            state.settings,
            state.stores.keys,
            authorization=_text(metadata.get("authorization")),
            actor_header=_text(metadata.get("x-actor-id")),
            client_host=host,
        )
    except NotAuthenticated as exc:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        raise  # abort raises; this line is for the type checker


def _text(value: str | bytes | None) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


async def _stored(
    state: State, context: aio.ServicerContext[Any, Any], export: Callable[[str], Awaitable[R]]
) -> R:
    """`export(actor)` for the call's actor, its errors as gRPC statuses."""
    actor = await _actor(state, context)
    try:
        return await export(actor)
    except DatabaseUnavailableError:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable; retry")
        raise
    except InvalidInputError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, state: State) -> None:
        self.state = state

    async def Export(
        self, request: ExportTraceServiceRequest, context: aio.ServicerContext[Any, Any]
    ) -> ExportTraceServiceResponse:
        store = self.state.stores.traces
        result = await _stored(
            self.state, context, lambda actor: export_traces(store, request, actor=actor)
        )
        return result.response()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, state: State) -> None:
        self.state = state

    async def Export(
        self, request: ExportLogsServiceRequest, context: aio.ServicerContext[Any, Any]
    ) -> ExportLogsServiceResponse:
        store = self.state.stores.logs
        result = await _stored(
            self.state, context, lambda actor: export_logs(store, request, actor=actor)
        )
        return result.response()


async def start_otlp_grpc(state: State, settings: Settings, port: int) -> aio.Server:
    """A started gRPC server for OTLP traces and logs on `settings.otlp_grpc_host`:`port`,
    serving the app's stores; stop it with `await server.stop(grace)`."""
    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            # `serve --workers N`: every worker listens on the port, the kernel spreads calls.
            ("grpc.so_reuseport", 1),
        ]
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(state), server)  # type: ignore[no-untyped-call]
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(state), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"{settings.otlp_grpc_host}:{port}")
    await server.start()
    return server
