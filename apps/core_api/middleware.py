"""ASGI middleware: request bodies checked before anything parses them, and access logs.

Plain ASGI classes rather than `BaseHTTPMiddleware`, so they neither buffer responses nor
break streaming, and they see every answer, including 413/415 and unhandled errors.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.core_api.metrics import ServiceMetrics
from chad_memory.otlp.wire import encode_status, media_type

access_logger = logging.getLogger("chad_memory.api.access")

_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in ("application/json", *JSON_LINES) or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


# JSON Lines (a dataset's items in bulk): JSON too, one value a line.
JSON_LINES = ("application/x-ndjson", "application/jsonl")


def _is_dashboard_form(path: str, content_type: str) -> bool:
    """The dashboard's own forms (sign in, sign out) post urlencoded fields, under the
    same size limit as every body."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return path.startswith("/ui/") and media_type == "application/x-www-form-urlencoded"


class BodyGuardMiddleware:
    """413 for bodies over `max_body_bytes`, 415 for bodies that are not JSON.

    A declared Content-Length over the limit is refused before a byte is read; a chunked
    body is read up to the limit and refused as soon as it passes it. The body is then
    handed on whole, so the app never parses more than the limit.
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, binary_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Routes that take non-JSON bodies (OTLP protobuf) and check their media type
        # themselves: only the size limit applies to them here.
        self.binary_paths = binary_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS_WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None:
            # ASCII digits only: str.isdigit() also takes superscripts, which int() refuses.
            if not (length.isascii() and length.isdigit()):
                await _refuse(scope, receive, send, 400, "Content-Length is not a number")
                return
            if len(length.lstrip("0")) > 18 or int(length) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
        content_type = headers.get("content-type")
        binary = scope["path"] in self.binary_paths
        if (
            content_type is not None
            and not binary
            and not _is_json(content_type)
            and not _is_dashboard_form(scope["path"], content_type)
        ):
            await _refuse(
                scope, receive, send, 415, "request bodies must be JSON (application/json)"
            )
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if not binary and body and content_type is None:
            await _refuse(scope, receive, send, 415, "Content-Type: application/json is required")
            return
        if not binary:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                # JSON between systems is UTF-8 (RFC 8259); FastAPI would answer an
                # undocumented 400 here, and bad input is a 422 everywhere else.
                await _refuse(scope, receive, send, 422, "request body is not valid UTF-8")
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body is larger than {self.max_body_bytes} bytes (MAX_BODY_BYTES)"
        await _refuse(scope, receive, send, 413, detail)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


class OtlpStatusMiddleware:
    """Error answers on OTLP paths as google.rpc.Status, in the request's encoding.

    OTLP/HTTP exporters read a Status from 4xx/5xx bodies; every other route answers
    {"detail": ...}. Errors reach the client from several places (the body guard's 413,
    authentication's 401, the store's 503, the route's 400), so they are re-encoded here,
    once, with their status and headers (Retry-After, WWW-Authenticate) kept. A request
    whose Content-Type is not an OTLP encoding keeps the JSON {"detail": ...} answer.
    """

    def __init__(self, app: ASGIApp, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        kind = media_type(Headers(scope=scope).get("content-type"))
        if kind is None:
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def send_status(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = encode_status(held["status"], _detail_text(b"".join(chunks)), kind)
            headers = [
                (name, value)
                for name, value in held.get("headers", [])
                if name.lower() not in (b"content-type", b"content-length")
            ]
            headers += [(b"content-type", kind.encode()), (b"content-length", b"%d" % len(body))]
            await send({**held, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        started = False

        async def send_noted(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_status(message)

        try:
            await self.app(scope, receive, send_noted)
        except Exception:
            # An unexpected error is a 500 in the exporter's encoding too; it is re-raised
            # so the server's error handler logs it as for any route.
            if not started:
                body = encode_status(500, "internal error", kind)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", kind.encode()),
                            (b"content-length", b"%d" % len(body)),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            raise


def _detail_text(body: bytes) -> str:
    """The message of a {"detail": ...} answer (a string, or pydantic's error list)."""
    try:
        detail = json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")
    return detail if isinstance(detail, str) else json.dumps(detail)


# A caller's own request id is kept when it is short and plain; anything else is replaced.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
REQUEST_ID_HEADER = "X-Request-ID"


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-ID` when it is well-formed, else a new one."""
    sent = Headers(scope=scope).get(REQUEST_ID_HEADER)
    return sent if sent is not None and _REQUEST_ID.match(sent) else uuid.uuid4().hex


class AccessLogMiddleware:
    """One JSON line per request (method, path, route, status, duration, actor, request
    id), the same figures into the app's metrics, and the request id back in a header.

    Never headers or bodies. The actor is what the auth dependency put in
    `request.state.actor` (the request's `scope["state"]`); the API key itself never
    reaches this logger. The route is the matched template (`/runs/{run_id}`), which the
    router leaves in the scope, so metrics stay bounded however many runs there are.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        request_id = state["request_id"] = request_id_of(scope)
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            entry = {
                "event": "request",
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "actor": state.get("actor"),
                "request_id": request_id,
            }
            if state.get("error"):
                entry["error"] = state["error"]
            # Server-side failures stand out at WARNING; everything else is routine.
            level = logging.WARNING if status >= 500 else logging.INFO
            access_logger.log(level, json.dumps(entry), extra={"request": entry})
            if self.metrics is not None:
                self.metrics.observe(scope["method"], route, status, seconds, state.get("error"))
