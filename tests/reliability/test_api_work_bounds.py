"""Issue 10 class 7: the work one request can cause is bounded, and /health answers meanwhile.

The body that held the worker for about a minute was legal-looking: under the size limit,
under the depth limit, very wide at moderate depth, with long keys on the way down and one
bad value at the very end, so the check walked it all, building a path string per node.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chad_memory.validation import MAX_JSON_DEPTH, MAX_JSON_NODES
from tests.reliability.conftest import EngineMaker, Served, serve


@pytest.fixture
async def api(make_engine: EngineMaker) -> AsyncIterator[Served]:
    engine, _ = make_engine()
    async with serve(engine) as served:
        yield served


def wide_under_long_keys(width: int, tail: Any) -> dict[str, Any]:
    """40 levels of 2,000-character keys, then an array of `width` zeros and `tail`."""
    root: dict[str, Any] = {}
    node = root
    for level in range(40):
        child: dict[str, Any] = {}
        node[f"{level:02d}" + "k" * 2000] = child
        node = child
    node["wide"] = [0] * width + [tail]
    return root


async def timed_post(api: Served, path: str, body: Any) -> tuple[int, float, int]:
    raw = json.dumps(body)
    started = time.perf_counter()
    response = await api.client.post(
        path, content=raw, headers={**api.alice, "Content-Type": "application/json"}
    )
    return response.status_code, time.perf_counter() - started, len(response.content)


async def health_latencies(api: Served, stop: asyncio.Event) -> list[float]:
    """GET /health over and over until `stop`; each answer's wait in seconds."""
    waits: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await api.client.get("/health")
        assert response.status_code == 200
        waits.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    return waits


async def test_wide_body_under_long_keys_is_refused_quickly_and_health_answers(
    api: Served,
) -> None:
    # 3 MB, 42 levels (< MAX_JSON_DEPTH): on the old code this took 10 s to minutes.
    body = {"request_payload": wide_under_long_keys(1_000_000, "\x00")}
    assert MAX_JSON_DEPTH > 42
    stop = asyncio.Event()
    probe = asyncio.create_task(health_latencies(api, stop))
    await asyncio.sleep(0.05)
    try:
        status, elapsed, size = await asyncio.wait_for(timed_post(api, "/runs", body), 30)
    finally:
        stop.set()
    waits = await probe
    assert status == 422
    assert size < 2048  # the 2,000-character keys are not echoed 40 times
    assert elapsed < 2.0, elapsed
    assert max(waits) < 2.0, max(waits)


async def test_node_budget_applies_to_each_json_field(api: Served) -> None:
    run = await api.client.post("/runs", json={}, headers=api.alice)
    run_id = run.json()["id"]
    over = {"rows": [0] * MAX_JSON_NODES}
    for path, body in [
        ("/runs", {"request_payload": over}),
        ("/runs", {"metadata": over}),
        (f"/runs/{run_id}/steps", [{"step_index": 0, "output": over}]),
        (f"/runs/{run_id}/llm-calls", {"response": over}),
    ]:
        status, elapsed, size = await timed_post(api, path, body)
        assert status == 422, path
        assert size < 2048
        assert elapsed < 2.0, (path, elapsed)
    just_under = {"rows": [0] * (MAX_JSON_NODES - 2)}  # the root and "rows" count too
    status, _, _ = await timed_post(api, "/runs", {"request_payload": just_under})
    assert status == 201
