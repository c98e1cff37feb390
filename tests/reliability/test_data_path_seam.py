"""The data path's one seam under attack: forged cursors, vectors float4 cannot hold,
driver states after killed backends, driver text in answers, and idempotent replays.

Each test here failed on the code before the data-path redesign (issue 9 / issue 10
classes 1, 3, 5, 9 and 12).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import Counter

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from chad_memory.database import get_session_factory
from chad_memory.errors import DatabaseUnavailableError, InvalidInputError
from chad_memory.schemas import LLMCallCreate, RunCreate, StepCreate
from chad_memory.settings import Settings
from chad_memory.stores import PostgresStore
from chad_memory.stores.transactions import translated_errors
from tests.reliability.conftest import EngineMaker, serve, terminate

DIM = Settings().embedding_dim


def _b64(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def forged_cursors(row_id: uuid.UUID) -> list[str]:
    """Cursors we never issued: the old unsigned shape with edge values and wrong types,
    and a signed-looking one whose signature is made up."""
    return [
        # Aware, but outside what the driver can encode once converted to UTC.
        _b64(["0001-01-01T00:00:00+14:00", str(row_id)]),
        _b64(["9999-12-31T23:59:59-14:00", str(row_id)]),
        _b64([[1, 2], {"a": 1}]),
        _b64([1.5, None]),
        _b64({"created_at": "2024-01-01T00:00:00+00:00"}),
        _b64(["2024-01-01T00:00:00+00:00", str(row_id)]) + ".AAAAAAAAAAAAAAAAAAAAAA",
        "not base64 at all !",
    ]


async def test_forged_cursors_are_422_on_every_paginated_route(
    make_engine: EngineMaker,
) -> None:
    engine, _ = make_engine()
    async with serve(engine) as api:
        c = api.client
        run = (await c.post("/runs", json={"name": "r"}, headers=api.alice)).json()
        thread = (await c.post("/threads", json={"agent_type": "a"}, headers=api.alice)).json()
        routes = [
            "/runs",
            "/threads",
            f"/threads/{thread['id']}/messages",
            f"/threads/{thread['id']}/runs",
            f"/runs/{run['id']}/steps",
            f"/runs/{run['id']}/llm-calls",
            f"/runs/{run['id']}/artifacts",
        ]
        for route in routes:
            for cursor in forged_cursors(uuid.UUID(run["id"])):
                answer = await c.get(route, params={"cursor": cursor}, headers=api.alice)
                assert answer.status_code == 422, (route, cursor, answer.text)
                assert "cursor" in answer.json()["detail"]
            # The connection (and the service) is fine afterwards.
            assert (await c.get(route, headers=api.alice)).status_code == 200, route
        # A genuine cursor of one list is refused by another.
        for i in range(3):
            await c.post("/runs", json={"name": f"r{i}"}, headers=api.alice)
        page = (await c.get("/runs", params={"limit": 1}, headers=api.alice)).json()
        assert page["next_cursor"]
        again = await c.get("/runs", params={"cursor": page["next_cursor"]}, headers=api.alice)
        assert again.status_code == 200
        crossed = await c.get("/threads", params={"cursor": page["next_cursor"]}, headers=api.alice)
        assert crossed.status_code == 422


async def test_search_with_components_beyond_float4_is_422(make_engine: EngineMaker) -> None:
    engine, _ = make_engine()
    async with serve(engine) as api:
        for big in (1e39, -3.5e38):
            query = [0.5] * DIM
            query[7] = big
            answer = await api.client.post(
                "/memory/search", json={"embedding": query, "k": 3}, headers=api.alice
            )
            assert answer.status_code == 422, answer.text
            assert "float4" in answer.json()["detail"]
        fine = await api.client.post(
            "/memory/search", json={"embedding": [0.5] * DIM, "k": 3}, headers=api.alice
        )
        assert fine.status_code == 200


@pytest.mark.parametrize(
    "message",
    [
        "cannot switch to state 12; another operation (2) is in progress",
        "cannot perform operation: another operation is in progress",
    ],
)
def test_driver_state_errors_are_retryable_unavailability(message: str) -> None:
    """asyncpg's InternalClientError after a backend was cut mid-operation is the
    database being unavailable (retryable before COMMIT), not a bug."""
    with pytest.raises(DatabaseUnavailableError) as raised, translated_errors("probe"):
        raise asyncpg.InternalClientError(message)
    assert raised.value.retryable
    assert message not in str(raised.value)


async def test_backends_terminated_under_load_never_answer_500(
    make_engine: EngineMaker, watcher: AsyncConnection
) -> None:
    engine, name = make_engine(db_retry_backoff_ms=5)
    async with serve(engine) as api:
        c = api.client
        run_id = (await c.post("/runs", json={"name": "r"}, headers=api.alice)).json()["id"]
        statuses: Counter[int] = Counter()
        stop = time.monotonic() + 4.0
        index = iter(range(1_000_000))

        async def client(k: int) -> None:
            while time.monotonic() < stop:
                calls = [
                    c.get(f"/runs/{run_id}", headers=api.alice),
                    c.get("/runs", params={"limit": 5}, headers=api.alice),
                    c.post("/runs", json={"name": f"c{k}"}, headers=api.alice),
                    c.post(
                        f"/runs/{run_id}/steps",
                        json={"step_index": next(index)},
                        headers=api.alice,
                    ),
                ]
                for call in calls:
                    statuses[(await call).status_code] += 1

        async def killer() -> None:
            while time.monotonic() < stop:
                await terminate(watcher, name)
                await asyncio.sleep(0.1)

        await asyncio.gather(killer(), *(client(k) for k in range(6)))
        assert statuses[500] == 0, statuses
        assert set(statuses) <= {200, 201, 503}, statuses
        assert statuses[200] + statuses[201] > 0


async def test_answers_speak_the_apis_words_not_the_drivers(make_engine: EngineMaker) -> None:
    engine, _ = make_engine()
    store = PostgresStore(get_session_factory(engine))
    run = await store.save_run(RunCreate(actor="alice"))
    # Validation skipped on purpose: the database's own range check must still answer in
    # our words, without the driver's `query argument $n` or Python reprs.
    unchecked = LLMCallCreate.model_construct(
        run_id=run.id, prompt_tokens=2**40, completion_tokens=0, total_tokens=2**40
    )
    with pytest.raises(InvalidInputError) as raised:
        await store.save_llm_call(unchecked)
    for leak in ("$", "query argument", "asyncpg", "int32", "datetime.datetime("):
        assert leak not in str(raised.value)

    async with serve(engine) as api:
        c = api.client
        run_id = (await c.post("/runs", json={"trace_id": "t-1"}, headers=api.alice)).json()["id"]
        await store.save_steps([StepCreate(run_id=uuid.UUID(run_id), step_index=0)])
        answers = [
            await c.post(f"/runs/{run_id}/steps", json={"step_index": 0}, headers=api.alice),
            await c.post("/runs", json={"trace_id": "t-1"}, headers=api.alice),
        ]
        for answer in answers:
            assert answer.status_code == 409, answer.text
            detail = answer.json()["detail"]
            for leak in ("uq_", "fk_", "pk_", "_key", "constraint", "asyncpg", "$"):
                assert leak not in detail, detail
        assert "step_index" in answers[0].json()["detail"]
        assert "trace_id" in answers[1].json()["detail"]


async def test_idempotent_retry_after_its_thread_was_deleted_replays_the_run(
    make_engine: EngineMaker,
) -> None:
    engine, _ = make_engine()
    async with serve(engine) as api:
        c = api.client
        thread = (await c.post("/threads", json={"agent_type": "a"}, headers=api.alice)).json()
        body = {"name": "linked", "thread_id": thread["id"]}
        headers = {**api.alice, "Idempotency-Key": "k-thread"}
        first = await c.post("/runs", json=body, headers=headers)
        assert first.status_code == 201
        assert (await c.delete(f"/threads/{thread['id']}", headers=api.alice)).status_code == 204
        retry = await c.post("/runs", json=body, headers=headers)
        assert retry.status_code == 200, retry.text
        assert retry.json()["id"] == first.json()["id"]
        # A new key still gets the thread rule.
        fresh = await c.post("/runs", json=body, headers={**api.alice, "Idempotency-Key": "k2"})
        assert fresh.status_code == 404
