"""Cursor pagination under concurrent inserts, and Idempotency-Key semantics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory.models import Run
from chad_memory.schemas import RunCreate
from chad_memory.stores.runs import idempotency_lock_id
from tests.api.conftest import Api


async def test_cursor_pages_250_runs_with_inserts_between_pages(
    api: Api, engine: AsyncEngine
) -> None:
    # 150 runs in one transaction share created_at (now() is per transaction), so the
    # cursor's id tie-break is exercised; 100 more arrive one by one.
    async with engine.begin() as conn:
        await conn.execute(
            insert(Run), [{"actor": "alice", "name": f"bulk-{i}"} for i in range(150)]
        )
        await conn.execute(insert(Run), [{"actor": "bob", "name": f"bob-{i}"} for i in range(20)])
    for i in range(100):
        await api.store.save_run(RunCreate(actor="alice", name=f"single-{i}"))
    async with engine.connect() as conn:
        existing = set((await conn.scalars(select(Run.id).where(Run.actor == "alice"))).all())
    assert len(existing) == 250

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 37}
        if cursor:
            params["cursor"] = cursor
        response = await api.client.get("/runs", params=params, headers=api.alice)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        # New runs arrive while the dashboard pages: they are newer, so they must not
        # shift the pages already being read.
        for j in range(3):
            created = await api.client.post(
                "/runs", json={"name": f"late-{pages}-{j}"}, headers=api.alice
            )
            assert created.status_code == 201
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a run was repeated"
    assert {str(i) for i in existing} == set(seen), "a run was skipped (or a late one leaked in)"
    assert pages == 7  # ceil(250 / 37)
    total = (await api.client.get("/runs", headers=api.alice)).json()["total"]
    assert total == 250 + 3 * pages


async def test_idempotent_create(api: Api) -> None:
    c = api.client
    body = {"name": "pay", "request_payload": {"amount": 10, "currency": "EUR"}}
    key = {"Idempotency-Key": "order-17"}
    first = await c.post("/runs", json=body, headers={**api.alice, **key})
    assert first.status_code == 201
    again = await c.post("/runs", json=body, headers={**api.alice, **key})
    assert again.status_code == 200
    assert again.json() == first.json()
    # Same meaning, different bytes (key order, spacing): still the same request.
    reordered = json.dumps(
        {"request_payload": {"currency": "EUR", "amount": 10}, "name": "pay"}, indent=2
    )
    replay = await c.post(
        "/runs",
        content=reordered,
        headers={**api.alice, **key, "Content-Type": "application/json"},
    )
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]

    different = await c.post("/runs", json={**body, "name": "refund"}, headers={**api.alice, **key})
    assert different.status_code == 422
    assert "order-17" in different.json()["detail"]

    # Keys are scoped to the actor: bob's "order-17" is another run.
    bobs = await c.post("/runs", json=body, headers={**api.bob, **key})
    assert bobs.status_code == 201
    assert bobs.json()["id"] != first.json()["id"]
    assert await api.store.count_runs() == 2

    for bad in ("", "x" * 256, "has space"):
        response = await c.post("/runs", json=body, headers={**api.alice, "Idempotency-Key": bad})
        assert response.status_code in (400, 422), (bad, response.status_code)
    assert await api.store.count_runs() == 2


async def test_same_key_in_flight_is_409(api: Api, engine: AsyncEngine) -> None:
    key = "slow-1"
    # Play the first request: hold its (actor, key) lock in an open transaction.
    async with engine.connect() as conn:
        await conn.execute(select(func.pg_advisory_xact_lock(idempotency_lock_id("alice", key))))
        busy = await api.client.post(
            "/runs", json={"name": "x"}, headers={**api.alice, "Idempotency-Key": key}
        )
        assert busy.status_code == 409
        assert key in busy.json()["detail"]
        # Another actor's same key is another lock.
        other = await api.client.post(
            "/runs", json={"name": "x"}, headers={**api.bob, "Idempotency-Key": key}
        )
        assert other.status_code == 201
        await conn.rollback()
    after = await api.client.post(
        "/runs", json={"name": "x"}, headers={**api.alice, "Idempotency-Key": key}
    )
    assert after.status_code == 201


async def test_concurrent_retries_make_one_run(api: Api, engine: AsyncEngine) -> None:
    headers = {**api.alice, "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(api.client.post("/runs", json={"name": "burst"}, headers=headers) for _ in range(8))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1, codes
    assert set(codes) <= {200, 201, 409}
    ids = {r.json()["id"] for r in responses if r.status_code in (200, 201)}
    assert len(ids) == 1
    async with engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM runs WHERE idempotency_key = 'burst'"))
    assert count == 1
