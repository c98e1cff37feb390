"""One table from library exceptions to HTTP answers; routes never catch them themselves."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from chad_memory.errors import (
    ChadMemoryError,
    ConflictError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[ChadMemoryError], int] = {
    NotFoundError: 404,
    ForbiddenError: 403,
    ConflictError: 409,
    InvalidInputError: 422,
    DatabaseUnavailableError: 503,
    # statement_timeout fired: the database answered, too slowly.
    DatabaseTimeoutError: 504,
}


def status_for(exc: ChadMemoryError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


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
    status = status_for(exc)
    headers = {"Retry-After": "1"} if status == 503 else None
    detail = str(exc) if status != 500 else "internal error"
    page = _page(request, status, detail)
    if page is not None:
        if headers:
            page.headers.update(headers)
        return page
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _plain(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
    return f"{where}: {error.get('msg', 'invalid')}"


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, unless the echoed input holds NaN or infinity: Python's json reads
    those from a body, but they cannot be written back as JSON, so the default handler
    would fail with a 500. Then the errors are sent without the offending input."""
    assert isinstance(exc, RequestValidationError)
    page = _page(request, 422, "; ".join(_plain(e) for e in exc.errors()))
    if page is not None:
        return page
    try:
        return await request_validation_exception_handler(request, exc)
    except ValueError:
        errors = [{k: v for k, v in e.items() if k not in ("input", "ctx")} for e in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _invalid_value(request: Request, exc: Exception) -> JSONResponse:
    # A value that passed the request model but not the library's record (a safety net:
    # the request models are meant to be at least as strict). No input echoed: it may be
    # huge, or NaN, which is not JSON.
    assert isinstance(exc, ValidationError)
    detail = [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False)
    ]
    return JSONResponse({"detail": detail}, status_code=422)


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
