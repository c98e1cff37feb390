"""One table from library exceptions to HTTP answers; routes never catch them themselves."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from chad_memory.errors import (
    ChadMemoryError,
    ConflictError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    EmbedderFailedError,
    EmbedderUnavailableError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UndecodableBodyError,
)
from chad_memory.validation import MAX_QUOTED_CHARS, quoted

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[ChadMemoryError], int] = {
    NotFoundError: 404,
    ForbiddenError: 403,
    ConflictError: 409,
    InvalidInputError: 422,
    UndecodableBodyError: 400,
    PayloadTooLargeError: 413,
    DatabaseUnavailableError: 503,
    EmbedderUnavailableError: 503,
    EmbedderFailedError: 502,
    # statement_timeout fired: the database answered, too slowly.
    DatabaseTimeoutError: 504,
}


def status_for(exc: ChadMemoryError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


# Error bodies stay small whatever was sent: at most this many errors, each quoting at
# most MAX_QUOTED_CHARS of the input, and a library message cut to MAX_DETAIL_CHARS.
MAX_ERRORS = 20
MAX_DETAIL_CHARS = 1000


def _page(request: Request, status: int, detail: str) -> Response | None:
    """The dashboard's error page when the request was for one of its pages (/ui), else
    None: the same status either way, HTML for people, JSON for programs."""
    path = request.url.path
    render = getattr(request.app.state, "ui_error_page", None)
    if render is None or not (path == "/ui" or path.startswith("/ui/")):
        return None
    page: Response = render(request, status, detail)
    return page


async def _chad_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChadMemoryError)
    request.state.error = type(exc).__name__  # for the access log and the metrics
    status = status_for(exc)
    retry_after = exc.retry_after_s if isinstance(exc, EmbedderUnavailableError) else 1
    headers = {"Retry-After": str(retry_after)} if status == 503 else None
    detail = _said(str(exc), MAX_DETAIL_CHARS) if status != 500 else "internal error"
    page = _page(request, status, detail)
    if page is not None:
        if headers:
            page.headers.update(headers)
        return page
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _said(text: str, limit: int) -> str:
    """`text` cut to `limit` characters and safe to encode: a lone surrogate sent by the
    client (refused, and so echoed) is shown escaped instead of breaking the answer."""
    short = quoted(text, limit)
    try:
        short.encode("utf-8")
    except UnicodeEncodeError:
        short = short.encode("utf-8", "backslashreplace").decode("utf-8")
    return short


def _echo(value: Any) -> Any:
    """The offending input as a short JSON value: small scalars as sent, the rest elided.

    The input may be megabytes (a 3 MB string echoed whole made a 3 MB answer), or NaN,
    which JSON cannot carry.
    """
    if isinstance(value, str):
        return _said(value, MAX_QUOTED_CHARS)
    if value is None or isinstance(value, bool | int):
        return value if not isinstance(value, int) or abs(value) < 10**18 else _said(str(value), 40)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} items"
    return _said(str(value), MAX_QUOTED_CHARS)


def compact_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """pydantic's error list in FastAPI's shape (type, loc, msg, input), bounded in size."""
    out: list[dict[str, Any]] = []
    for e in errors[:MAX_ERRORS]:
        entry: dict[str, Any] = {
            "type": e["type"],
            "loc": [p if isinstance(p, int) else _said(str(p), MAX_QUOTED_CHARS) for p in e["loc"]],
            "msg": _said(str(e["msg"]), MAX_DETAIL_CHARS // 4),
        }
        if "input" in e:
            entry["input"] = _echo(e["input"])
        if e.get("ctx"):
            # The context is ours (limits, expected values, the validator's message).
            entry["ctx"] = {
                str(k): v if isinstance(v, int | float) else _said(str(v), MAX_DETAIL_CHARS // 4)
                for k, v in e["ctx"].items()
            }
        out.append(entry)
    if len(errors) > MAX_ERRORS:
        out.append(
            {
                "type": "more_errors",
                "loc": [],
                "msg": f"{len(errors) - MAX_ERRORS} more errors not shown",
            }
        )
    return out


def _plain(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
    return f"{where}: {error.get('msg', 'invalid')}"


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 shape, with the echoed input cut short and at most MAX_ERRORS errors."""
    assert isinstance(exc, RequestValidationError)
    errors = compact_errors(exc.errors())
    page = _page(request, 422, "; ".join(_plain(e) for e in errors))
    if page is not None:
        return page
    return JSONResponse({"detail": errors}, status_code=422)


async def _invalid_value(request: Request, exc: Exception) -> JSONResponse:
    # A value that passed the request model but not the library's record (a safety net:
    # the request models are meant to be at least as strict).
    assert isinstance(exc, ValidationError)
    return JSONResponse({"detail": compact_errors(exc.errors(include_url=False))}, status_code=422)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Logged with its traceback for operators; the client sees no internals.
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    page = _page(request, 500, "internal error")
    if page is not None:
        return page
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ChadMemoryError, _chad_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ValidationError, _invalid_value)
    app.add_exception_handler(Exception, _unexpected)
