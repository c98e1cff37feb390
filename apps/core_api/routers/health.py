"""Liveness and database reachability, for load balancers and `make serve` users."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from apps.core_api.auth import authenticate
from apps.core_api.deps import Stores
from apps.core_api.schemas import Problem
from chad_memory.database import check_db_connection
from chad_memory.errors import ChadMemoryError
from chad_memory.vector_index import Method

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


class VectorCalibrationHealth(BaseModel):
    """What the index's last calibration measured: searches use `setting` = `value`."""

    setting: Literal["ivfflat.probes", "hnsw.ef_search"]
    value: int
    recall: float
    target: float
    met: bool
    k: int
    queries: int
    rows: int
    at: datetime
    seconds: float


class VectorIndexHealth(BaseModel):
    """The vector index search uses; `stale` means its lists no longer fit the data and a
    rebuild is due (`rebuild_due`: done in the background unless VECTOR_AUTO_REBUILD=false)."""

    name: str | None
    method: Method | None
    lists: int | None
    m: int | None
    ef_construction: int | None
    trained_rows: int
    rows: int
    valid: bool
    stale: bool
    built_at: datetime | None = None
    calibration: VectorCalibrationHealth | None = None
    rebuild_due: bool = False
    recalibration_due: bool = False


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]
    # Only with ?details=true, and only while the database answers; a stale index does
    # not make the service unhealthy.
    vector_index: VectorIndexHealth | None = None


async def _vector_index(request: Request) -> dict[str, Any] | None:
    stores: Stores | None = getattr(request.app.state, "stores", None)
    if stores is None:
        return None
    try:
        async with asyncio.timeout(2.0):
            info = await stores.vectors.index_info()
    except (TimeoutError, ChadMemoryError, OSError) as exc:
        logger.warning("vector index check failed: %s", exc.__class__.__name__)
        return None
    details: dict[str, Any] = info.as_dict()
    return details


@router.get(
    "/health",
    response_model=Health,
    responses={
        401: {"model": Problem, "description": "details=true without a valid API key"},
        503: {"model": Health},
    },
)
async def health(
    request: Request,
    details: Annotated[
        bool, Query(description="add the vector index's state (needs an API key)")
    ] = False,
) -> JSONResponse:
    """200 when the database answers; 503 (and the process keeps running) when it does not.

    The plain body is exactly {"status", "database"}, what load balancers poll, and needs
    no key. `?details=true` also carries `vector_index`, so a stale IVFFLAT index (recall
    dropping as rows grow past what it was trained on) is visible to operators; its row
    counts span every tenant, so details need an API key (401 without one). The service
    also logs a stale index at startup and whenever it re-reads the index.
    """
    ok = await check_db_connection(request.app.state.engine, timeout=2.0)
    index = None
    if ok and details:
        # Read here, not declared as a dependency: the plain /health needs no key, and a
        # security requirement in the OpenAPI document would say it did.
        await authenticate(request)
        index = await _vector_index(request)
    body = Health(
        status="ok" if ok else "degraded",
        database="ok" if ok else "unavailable",
        vector_index=VectorIndexHealth.model_validate(index) if index is not None else None,
    ).model_dump(mode="json")
    if body["vector_index"] is None:
        del body["vector_index"]
    return JSONResponse(body, status_code=200 if ok else 503)
