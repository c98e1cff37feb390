"""How long the biggest legal and hostile bodies hold the service, beside a small one:
JSON bodies, and OTLP exports at and far past MAX_SPANS_PER_EXPORT.

For each body: the request's time, the event loop's longest stall while it ran (a task
that wakes every 5 ms notes the gaps), and the slowest `/health` answered meanwhile.
The app runs in-process (httpx ASGITransport) on a scratch database of the bench server.

    .venv/bin/python -m bench.request_bounds
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

from apps.core_api.main import create_app
from bench.common import create_database, drop_database, load_line, say, sqlalchemy_url, table
from chad_memory import ApiKeyStore
from chad_memory.database import create_engine, get_session_factory
from chad_memory.settings import Settings


def hostile() -> dict[str, Any]:
    """40 levels of 2,000-character keys over a 1,000,000-wide array ending in a NUL."""
    root: dict[str, Any] = {}
    node = root
    for level in range(40):
        child: dict[str, Any] = {}
        node[f"{level:02d}" + "k" * 2000] = child
        node = child
    node["wide"] = [0] * 1_000_000 + ["\x00"]
    return {"request_payload": root}


def big_steps() -> list[dict[str, Any]]:
    """1,000 steps, each with an input of about 1,900 JSON values: about 8.7 MB."""
    payload = {"rows": [[i, "v", 1.5, None] for i in range(380)]}
    return [{"step_index": i, "input": payload} for i in range(1000)]


def deep_and_wide() -> dict[str, Any]:
    """A legal request_payload: 60 levels of objects, then 45,000 objects of a
    190-character string (90,000 values, under MAX_JSON_NODES): about 9.2 MB."""
    root: dict[str, Any] = {}
    node = root
    for level in range(60):
        child: dict[str, Any] = {}
        node[f"k{level}"] = child
        node = child
    node["wide"] = [{"t": "x" * 190} for _ in range(45_000)]
    return {"request_payload": root}


def otlp_export(traces: int, per_trace: int, tiny: bool = False) -> bytes:
    """An ExportTraceServiceRequest of traces x per_trace spans (tiny: ids only)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for t in range(traces):
        trace = t.to_bytes(16, "big")
        for i in range(1, per_trace + 1):
            span = scope.spans.add(trace_id=trace, span_id=i.to_bytes(8, "big"))
            if not tiny:
                span.name = f"s{i}"
                span.start_time_unix_nano = 1_700_000_000_000_000_000 + i
                span.end_time_unix_nano = span.start_time_unix_nano + 1_000
    return request.SerializeToString()


async def measure(client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str]) -> Any:
    if isinstance(body, bytes):
        raw: str | bytes = body
        headers = {**headers, "Content-Type": "application/x-protobuf"}
    else:
        raw = json.dumps(body)
        headers = {**headers, "Content-Type": "application/json"}
    stop = asyncio.Event()
    gaps: list[float] = []
    health: list[float] = []

    async def watch_loop() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async def poll_health() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await client.get("/health")
            health.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(watch_loop()), asyncio.create_task(poll_health())]
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    response = await client.post(path, content=raw, headers=headers)
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*tasks)
    return len(raw), response.status_code, elapsed, max(gaps), max(health)


async def main() -> None:
    db = await create_database("bench_bounds")
    url = sqlalchemy_url(db)
    engine = create_engine(url, Settings(database_url=url))
    try:
        app = create_app(engine=engine, settings=Settings(database_url=url))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://b", timeout=600
            ) as client,
        ):
            secret = (await ApiKeyStore(get_session_factory(engine)).create_key("b")).secret
            headers = {"Authorization": f"Bearer {secret}"}
            run = (await client.post("/runs", json={}, headers=headers)).json()["id"]
            cases = [
                ("one small step (baseline)", f"/runs/{run}/steps", [{"step_index": 5000}]),
                ("1,000 steps, 8.7 MB, legal", f"/runs/{run}/steps", big_steps()),
                ("wide under long keys, 3 MB, NUL last", "/runs", hostile()),
                ("request_payload 9.2 MB, 60 deep, 45,000 wide", "/runs", deep_and_wide()),
                ("OTLP 10,000 spans (500 traces)", "/v1/traces", otlp_export(500, 20)),
                ("OTLP 200,000 tiny spans", "/v1/traces", otlp_export(1, 200_000, tiny=True)),
            ]
            rows = []
            base: Any = None
            for name, path, body in cases:
                say(f"sending {name}")
                size, status, elapsed, stall, slowest = await measure(client, path, body, headers)
                base = base or (elapsed, stall)
                rows.append(
                    [
                        name,
                        f"{size / 1e6:.2f} MB",
                        status,
                        f"{elapsed:.2f} s ({elapsed / base[0]:.0f}x)",
                        f"{stall:.2f} s",
                        f"{slowest:.2f} s",
                    ]
                )
    finally:
        await engine.dispose()
        await drop_database(db)
    print(load_line())
    columns = ["body", "size", "status", "time (x baseline)", "longest loop stall"]
    print(table([*columns, "slowest /health"], rows))


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
