"""GET /metrics, GET /export and request ids, through the real app."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory.retention import retention_sweeper
from tests.api.conftest import Api


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_need_a_key_and_count_requests_by_route(api: Api) -> None:
    assert (await api.client.get("/metrics")).status_code == 401
    run = (await api.client.post("/runs", json={"name": "m"}, headers=api.alice)).json()
    steps = [{"step_index": 0, "name": "a"}, {"step_index": 1, "name": "b"}]
    added = await api.client.post(f"/runs/{run['id']}/steps", json=steps, headers=api.alice)
    assert added.status_code == 201
    # A replayed create stores nothing, so it counts nothing.
    key = {"Idempotency-Key": "once"}
    for _ in range(2):
        await api.client.post("/runs", json={"name": "k"}, headers={**api.alice, **key})
    for _ in range(3):
        assert (await api.client.get(f"/runs/{run['id']}", headers=api.alice)).status_code == 200
    assert (await api.client.get(f"/runs/{run['id']}", headers=api.bob)).status_code == 403

    answer = await api.client.get("/metrics", headers=api.alice)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = _samples(answer.text)
    route = "/runs/{run_id}"
    ok = ("chad_http_requests_total", (("method", "GET"), ("route", route), ("status", "200")))
    forbidden = (
        "chad_http_requests_total",
        (("method", "GET"), ("route", route), ("status", "403")),
    )
    assert samples[ok] == 3
    assert samples[forbidden] == 1
    # Route templates, never raw paths: a scrape does not grow with the number of runs.
    assert run["id"] not in answer.text
    count = ("chad_http_request_duration_seconds_count", (("method", "GET"), ("route", route)))
    assert samples[count] == 4
    assert samples[("chad_errors_total", (("error", "ForbiddenError"),))] == 1
    assert samples[("chad_db_pool_size", ())] >= 1
    assert ("chad_db_pool_checked_out", ()) in samples
    assert ("chad_vector_index_stale", ()) in samples
    assert samples[("chad_ingested_total", (("kind", "spans"),))] == 0
    assert samples[("chad_ingested_total", (("kind", "runs"),))] == 2
    assert samples[("chad_ingested_total", (("kind", "steps"),))] == 2


async def test_request_id_is_kept_when_plain_and_made_otherwise(api: Api) -> None:
    mine = await api.client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = await api.client.get("/health", headers={"X-Request-ID": "no spaces <allowed>"})
    assert made.headers["x-request-id"] != "no spaces <allowed>"
    assert len(made.headers["x-request-id"]) == 32
    other = await api.client.get("/health")
    assert other.headers["x-request-id"] != made.headers["x-request-id"]


async def test_export_streams_only_the_callers_data(api: Api) -> None:
    mine = (await api.client.post("/runs", json={"name": "mine"}, headers=api.alice)).json()
    await api.client.post(
        f"/runs/{mine['id']}/steps", json=[{"step_index": 0, "name": "s"}], headers=api.alice
    )
    await api.client.post("/runs", json={"name": "theirs"}, headers=api.bob)
    assert (await api.client.get("/export")).status_code == 401

    answer = await api.client.get("/export", headers=api.alice)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in answer.text.splitlines()]
    assert records[0]["kind"] == "header"
    assert [r["data"]["name"] for r in records if r["kind"] == "run"] == ["mine"]
    assert [r["data"]["name"] for r in records if r["kind"] == "step"] == ["s"]

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    empty = await api.client.get("/export", params={"since": later}, headers=api.alice)
    assert [r["kind"] for r in map(json.loads, empty.text.splitlines())] == ["header"]
    naive = await api.client.get(
        "/export", params={"since": "2026-01-01T00:00:00"}, headers=api.alice
    )
    assert naive.status_code == 422
    epoch = await api.client.get("/export", params={"since": "740276"}, headers=api.alice)
    assert epoch.status_code == 422


async def test_retention_sweeper_prunes_in_the_background(api: Api, engine: AsyncEngine) -> None:
    old = (await api.client.post("/runs", json={"name": "old"}, headers=api.alice)).json()
    new = (await api.client.post("/runs", json={"name": "new"}, headers=api.alice)).json()
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE runs SET created_at = now() - interval '40 days' WHERE id = :id"),
            {"id": old["id"]},
        )
    # Two sweepers (two workers): one holds the lock, both keep going; the old run goes.
    tasks = [
        asyncio.create_task(retention_sweeper(engine, days=30, interval_s=0.05)) for _ in range(2)
    ]
    try:
        for _ in range(100):
            if (await api.client.get(f"/runs/{old['id']}", headers=api.alice)).status_code == 404:
                break
            await asyncio.sleep(0.05)
        assert (await api.client.get(f"/runs/{old['id']}", headers=api.alice)).status_code == 404
        assert (await api.client.get(f"/runs/{new['id']}", headers=api.alice)).status_code == 200
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_export_since_refuses_a_number(api: Api) -> None:
    """A bare number is not a timestamp (pydantic would read it as epoch seconds)."""
    answer = await api.client.get("/export", params={"since": "740276"}, headers=api.alice)
    assert answer.status_code == 422
