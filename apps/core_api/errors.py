"""One table from library exceptions to HTTP answers; routes never catch them themselves."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Logged with its traceback for operators; the client sees no internals.
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ChadMemoryError, _chad_error)
    app.add_exception_handler(Exception, _unexpected)
