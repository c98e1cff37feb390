"""Liveness and database reachability, for load balancers and `make serve` users."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from chad_memory.database import check_db_connection

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(request: Request) -> JSONResponse:
    """200 when the database answers; 503 (and the process keeps running) when it does not."""
    ok = await check_db_connection(request.app.state.engine, timeout=2.0)
    body = Health(status="ok" if ok else "degraded", database="ok" if ok else "unavailable")
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
