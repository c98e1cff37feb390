"""Operating the service: Prometheus metrics and a streamed export of the caller's data.

Both need a key: the metrics carry figures about every tenant (request rates, pool use,
the vector index), so they are for operators, not for anyone who can reach the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from apps.core_api.auth import CurrentActor
from apps.core_api.deps import Stores
from apps.core_api.metrics import ServiceMetrics
from apps.core_api.schemas import AUTH_RESPONSES
from chad_memory.archive import ExportScope, export_records
from chad_memory.errors import ChadMemoryError
from chad_memory.schemas import IsoDatetime

router = APIRouter(tags=["operations"], responses={**AUTH_RESPONSES})


async def _refresh_index_gauges(request: Request, metrics: ServiceMetrics) -> None:
    stores: Stores | None = getattr(request.app.state, "stores", None)
    if stores is None:
        return
    with contextlib.suppress(TimeoutError, ChadMemoryError, OSError):
        async with asyncio.timeout(2.0):
            info = await stores.vectors.index_info()
        metrics.index_stale.set(1 if info.stale else 0)
        metrics.index_rows.set(info.rows)
        metrics.index_trained_rows.set(info.trained_rows or 0)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(request: Request, actor: CurrentActor) -> Response:
    """Request counts and latency by route, pool use, errors by class, rows ingested, and
    the vector index's staleness, in the Prometheus text exposition format."""
    service_metrics: ServiceMetrics = request.app.state.metrics
    await _refresh_index_gauges(request, service_metrics)
    return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


async def _first(
    records: AsyncIterator[dict[str, Any]], count: int
) -> AsyncIterator[dict[str, Any]]:
    for _ in range(count):
        try:
            yield await anext(records)
        except StopAsyncIteration:
            return


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON Lines"}},
)
async def export(
    request: Request,
    actor: CurrentActor,
    since: Annotated[
        IsoDatetime | None, Query(description="only rows from this time on (with a time zone)")
    ] = None,
) -> StreamingResponse:
    """The caller's threads, messages, runs with their children, and embeddings as JSON
    Lines (`chad-memory import` loads it), streamed: memory stays flat however large."""
    scope = ExportScope(actor=actor, since=since)
    records: AsyncGenerator[dict[str, Any]] = export_records(request.app.state.engine, scope)
    # The header and the first row are read before the status is sent: whatever fails
    # in checking the scope or starting the first query answers with its own status,
    # not as a 200 whose body stops part-way.
    first = [record async for record in _first(records, 2)]

    async def lines() -> AsyncIterator[bytes]:
        try:
            for record in first:
                yield _line(record)
            async for record in records:
                yield _line(record)
        finally:
            await records.aclose()

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="chad-memory-{actor}.jsonl"'},
    )
