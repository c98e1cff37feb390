"""Round two of the outside attack: inputs at the edges of what each field can hold.

Timestamps at the ends of the range, vectors that vanish in float4, booleans where an
integer is due, huge invalid input echoed back, and health details without a key. Each
test names the class of issue 10 it proves.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from chad_memory import EmbeddingCreate, PgVectorStore
from chad_memory.errors import InvalidInputError
from chad_memory.settings import get_settings
from tests.reliability.conftest import EngineMaker, Served, serve

DIM = get_settings().embedding_dim
# The instants asyncpg writes as -infinity / infinity (datetime.min / datetime.max).
EARLIEST = "0001-01-01T00:00:00Z"
LATEST = "9999-12-31T23:59:59.999999Z"


def unit(seed: int = 1) -> list[float]:
    values = [math.sin(seed * (i + 1)) for i in range(DIM)]
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


@pytest.fixture
async def api(make_engine: EngineMaker) -> AsyncIterator[Served]:
    engine, _ = make_engine()
    async with serve(engine) as served:
        yield served


async def new_run(api: Served, **body: Any) -> str:
    response = await api.client.post("/runs", json=body, headers=api.alice)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


# Class 2: timestamps at the edges of the range ------------------------------------------


@pytest.mark.parametrize("instant", [EARLIEST, LATEST, "0001-01-01T00:00:00+00:00"])
async def test_edge_timestamps_are_refused_in_every_timestamp_field(
    api: Served, instant: str, watcher: AsyncConnection
) -> None:
    """One rule for every timestamp field: the two instants the driver would turn into
    -infinity / infinity are refused, everywhere a timestamp is read."""
    c, h = api.client, api.alice
    run_id = await new_run(api)
    attempts = [
        await c.post("/runs", json={"started_at": instant}, headers=h),
        await c.post("/runs", json={"completed_at": instant}, headers=h),
        await c.patch(f"/runs/{run_id}", json={"started_at": instant}, headers=h),
        await c.patch(f"/runs/{run_id}", json={"completed_at": instant}, headers=h),
        await c.post(
            f"/runs/{run_id}/steps", json={"step_index": 0, "started_at": instant}, headers=h
        ),
        await c.post(
            f"/runs/{run_id}/steps", json={"step_index": 1, "completed_at": instant}, headers=h
        ),
        await c.get("/runs", params={"created_after": instant}, headers=h),
        await c.get("/runs", params={"created_before": instant}, headers=h),
    ]
    assert [r.status_code for r in attempts] == [422] * len(attempts), [
        r.text[:200] for r in attempts
    ]
    for r in attempts:
        assert "range" in r.text, r.text[:300]
    infinite = await watcher.scalar(
        text(
            "SELECT count(*) FROM runs r FULL JOIN steps s ON s.run_id = r.id"
            " WHERE NOT isfinite(r.started_at) OR NOT isfinite(r.completed_at)"
            " OR NOT isfinite(s.started_at) OR NOT isfinite(s.completed_at)"
        )
    )
    assert infinite == 0


async def test_timestamps_just_inside_the_edges_round_trip_exactly(api: Served) -> None:
    c, h = api.client, api.alice
    first, last = "0001-01-01T00:00:00.000001Z", "9999-12-31T23:59:59.999998Z"
    run_id = await new_run(api, started_at=first, completed_at=last)
    step = await c.post(
        f"/runs/{run_id}/steps",
        json={"step_index": 0, "started_at": first, "completed_at": last},
        headers=h,
    )
    assert step.status_code == 201, step.text
    run = (await c.get(f"/runs/{run_id}", headers=h)).json()
    assert run["started_at"].startswith("0001-01-01T00:00:00.000001")
    assert run["completed_at"].startswith("9999-12-31T23:59:59.999998")
    assert run["started_at"].endswith("Z") or run["started_at"].endswith("+00:00")
    stats = await c.get(f"/runs/{run_id}/stats", headers=h)
    assert stats.status_code == 200, stats.text


async def test_stats_survive_infinite_timestamps_already_stored(
    api: Served, watcher: AsyncConnection
) -> None:
    """Rows written before the rule (stored as +-infinity) must not make /stats a 500."""
    c, h = api.client, api.alice
    run_id = await new_run(api)
    step_run = await new_run(api)
    assert (
        await c.post(f"/runs/{step_run}/steps", json=[{"step_index": 0}], headers=h)
    ).status_code == 201
    await watcher.execute(
        text("UPDATE runs SET started_at = '-infinity', completed_at = 'infinity' WHERE id = :id"),
        {"id": uuid.UUID(run_id)},
    )
    await watcher.execute(
        text("UPDATE steps SET started_at = '-infinity', completed_at = now() WHERE run_id = :id"),
        {"id": uuid.UUID(step_run)},
    )
    for rid in (run_id, step_run):
        stats = await c.get(f"/runs/{rid}/stats", headers=h)
        assert stats.status_code == 200, stats.text
        assert stats.json()["duration_ms"] is None  # an infinite span has no duration


# Class 4: zero and underflowing vectors ---------------------------------------------------

# Each rounds to, or squares to, nothing in float4: cosine similarity is undefined there.
VANISHING = {
    "zeros": [0.0] * DIM,
    "float4_underflow": [1e-46] * DIM,  # nonzero in float8, 0 in float4
    "square_underflow": [1e-25] * DIM,  # nonzero in float4, its square is 0 in float4
    "one_tiny_component": [0.0] * (DIM - 1) + [1e-30],
    "square_overflow": [1e20] * DIM,  # in float4's range, its square is not
}


@pytest.mark.parametrize("name", list(VANISHING))
async def test_vanishing_vectors_are_refused_on_add_and_on_search(
    api: Served, name: str, watcher: AsyncConnection
) -> None:
    c, h = api.client, api.alice
    vec = VANISHING[name]
    added = await c.post("/memory", json={"items": [{"embedding": vec}]}, headers=h)
    assert added.status_code == 422, added.text[:300]
    assert await watcher.scalar(text("SELECT count(*) FROM embeddings")) == 0
    found = await c.post("/memory/search", json={"embedding": vec}, headers=h)
    assert found.status_code == 422, found.text[:300]
    assert "cosine" in found.text


async def test_library_refuses_vanishing_vectors_too(vector_store: PgVectorStore) -> None:
    for vec in VANISHING.values():
        with pytest.raises(InvalidInputError, match="cosine"):
            await vector_store.add_embeddings([EmbeddingCreate(actor="a", embedding=vec)])
        with pytest.raises(InvalidInputError, match="cosine"):
            await vector_store.search(vec, actor="a")


async def test_scores_are_numbers_and_small_but_sound_vectors_still_work(api: Served) -> None:
    c, h = api.client, api.alice
    small = [v * 1e-15 for v in unit(2)]  # tiny, but its square is a normal float4
    items = [{"embedding": unit(1)}, {"embedding": small}]
    assert (await c.post("/memory", json={"items": items}, headers=h)).status_code == 201
    hits = await c.post("/memory/search", json={"embedding": unit(1), "k": 5}, headers=h)
    assert hits.status_code == 200, hits.text
    scores = [hit["score"] for hit in hits.json()["items"]]
    assert len(scores) == 2
    assert all(isinstance(s, float) for s in scores), scores
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(1.0, abs=1e-5)


# Class 13: booleans where the schema says integer; small error bodies ------------------


async def test_booleans_are_not_numbers(api: Served) -> None:
    c, h = api.client, api.alice
    run_id = await new_run(api)
    vec = unit(3)
    attempts = {
        "step_index": await c.post(f"/runs/{run_id}/steps", json={"step_index": True}, headers=h),
        "duration_ms": await c.post(
            f"/runs/{run_id}/steps", json={"step_index": 0, "duration_ms": True}, headers=h
        ),
        "prompt_tokens": await c.post(
            f"/runs/{run_id}/llm-calls", json={"prompt_tokens": True}, headers=h
        ),
        "latency_ms": await c.post(
            f"/runs/{run_id}/llm-calls", json={"latency_ms": False}, headers=h
        ),
        "size_bytes": await c.post(
            f"/runs/{run_id}/artifacts", json={"name": "a", "size_bytes": True}, headers=h
        ),
        "k": await c.post("/memory/search", json={"embedding": vec, "k": True}, headers=h),
        "min_score": await c.post(
            "/memory/search", json={"embedding": vec, "min_score": False}, headers=h
        ),
        "embedding": await c.post(
            "/memory", json={"items": [{"embedding": [True, *vec[1:]]}]}, headers=h
        ),
    }
    assert {k: r.status_code for k, r in attempts.items()} == dict.fromkeys(attempts, 422)
    steps = await c.get(f"/runs/{run_id}/steps", headers=h)
    assert steps.json() == []


async def test_error_bodies_stay_small_whatever_the_input(api: Served) -> None:
    c, h = api.client, api.alice
    run_id = await new_run(api)
    big = "x" * 3_000_000
    answers = [
        # pydantic refuses it (too long): its input would be echoed
        await c.post("/runs", json={"name": big}, headers=h),
        # the library refuses it (NUL deep inside, under a huge key)
        await c.post("/runs", json={"metadata": {big: {"a": "\x00"}}}, headers=h),
        await c.post("/runs", json={"request_payload": [big, "\x00"]}, headers=h),
        # a thousand wrong items, each its own error
        await c.post(f"/runs/{run_id}/steps", json=[{"step_index": big[:1000]}] * 1000, headers=h),
        await c.post("/runs", json={"tags": [big[:600]] * 60}, headers=h),
    ]
    for r in answers:
        assert r.status_code == 422, r.text[:300]
        assert len(r.content) <= 8192, (len(r.content), r.text[:300])
        body = r.json()
        assert "detail" in body


# Class 10: /health details need a key -------------------------------------------------


async def test_health_details_need_a_key(api: Served) -> None:
    c = api.client
    assert (
        await c.post("/memory", json={"items": [{"embedding": unit(4)}]}, headers=api.alice)
    ).status_code == 201
    anonymous = await c.get("/health", params={"details": "true"})
    assert anonymous.status_code == 401
    assert "vector_index" not in anonymous.text
    assert "rows" not in anonymous.text
    bad_key = await c.get(
        "/health", params={"details": "true"}, headers={"Authorization": "Bearer nope"}
    )
    assert bad_key.status_code == 401
    plain = await c.get("/health")
    assert plain.status_code == 200
    assert plain.json() == {"status": "ok", "database": "ok"}
    keyed = await c.get("/health", params={"details": "true"}, headers=api.bob)
    assert keyed.status_code == 200
    assert json.loads(keyed.text)["vector_index"]["method"] == "ivfflat"
