"""GET /runs `total`: exact up to TOTAL_CAP, then capped and flagged, exact on request."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from apps.core_api.schemas import TOTAL_CAP
from chad_memory import InvalidInputError, RunFilter
from tests.api.conftest import Api


async def _bulk_runs(engine: AsyncEngine, actor: str, n: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO runs (id, actor, status, created_at, updated_at) "
                "SELECT gen_random_uuid(), :actor, 'succeeded', "
                "now() - g * interval '1 second', now() FROM generate_series(1, :n) g"
            ),
            {"actor": actor, "n": n},
        )


async def test_total_is_exact_below_the_cap(api: Api, engine: AsyncEngine) -> None:
    await _bulk_runs(engine, "alice", TOTAL_CAP)
    response = await api.client.get("/runs", params={"limit": 5}, headers=api.alice)
    assert response.status_code == 200
    assert response.json()["total"] == TOTAL_CAP
    assert response.headers["X-Total-Exact"] == "true"


async def test_total_is_capped_above_the_cap_unless_exact_is_asked(
    api: Api, engine: AsyncEngine
) -> None:
    await _bulk_runs(engine, "alice", TOTAL_CAP + 7)
    await _bulk_runs(engine, "bob", 3)
    capped = await api.client.get("/runs", params={"limit": 5}, headers=api.alice)
    assert capped.status_code == 200
    body = capped.json()
    assert set(body) == {"items", "total", "next_cursor"}
    assert body["total"] == TOTAL_CAP
    assert capped.headers["X-Total-Exact"] == "false"
    assert len(body["items"]) == 5
    exact = await api.client.get(
        "/runs", params={"limit": 5, "exact_total": "true"}, headers=api.alice
    )
    assert exact.json()["total"] == TOTAL_CAP + 7
    assert exact.headers["X-Total-Exact"] == "true"
    # Filters still apply to the capped count: bob sees his own three.
    bob = await api.client.get("/runs", headers=api.bob)
    assert (bob.json()["total"], bob.headers["X-Total-Exact"]) == (3, "true")


async def test_count_runs_with_cap_stops_one_past_it(api: Api, engine: AsyncEngine) -> None:
    await _bulk_runs(engine, "alice", 30)
    alice = RunFilter(actor="alice")
    assert await api.store.count_runs(alice, cap=10) == 11
    assert await api.store.count_runs(alice, cap=30) == 30
    assert await api.store.count_runs(alice) == 30
    with pytest.raises(InvalidInputError):
        await api.store.count_runs(alice, cap=-1)
    bad = await api.client.get("/runs", params={"exact_total": "maybe"}, headers=api.alice)
    assert bad.status_code == 422
