"""One table from library exceptions to HTTP answers; routes never catch them themselves."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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


async def _chad_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChadMemoryError)
    status = status_for(exc)
    headers = {"Retry-After": "1"} if status == 503 else None
    detail = str(exc) if status != 500 else "internal error"
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _validation_detail(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Where and why, without echoing the input: it may be huge, secret, or NaN (not JSON)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _validation_detail(exc.errors())}, status_code=422)


async def _invalid_value(request: Request, exc: Exception) -> JSONResponse:
    # A value that passed the request model but not the library's record (a safety net:
    # the request models are meant to be at least as strict).
    assert isinstance(exc, ValidationError)
    detail = _validation_detail(exc.errors(include_url=False))
    return JSONResponse({"detail": detail}, status_code=422)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Logged with its traceback for operators; the client sees no internals.
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ChadMemoryError, _chad_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ValidationError, _invalid_value)
    app.add_exception_handler(Exception, _unexpected)
