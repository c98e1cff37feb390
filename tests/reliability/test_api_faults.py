"""The service under faults: killed backends, an exhausted pool, slow statements,
clients that vanish, and the same Idempotency-Key sent many times at once.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chad_memory.models import Run, Step
from chad_memory.stores.transactions import RetryPolicy
from tests.reliability.conftest import EngineMaker, serve, terminate, wait_for_lock_wait


async def _runs(conn: AsyncConnection, **where: str) -> int:
    conds = [getattr(Run, k) == v for k, v in where.items()]
    return int(await conn.scalar(select(func.count()).select_from(Run).where(*conds)) or 0)


async def _idle_in_transaction(conn: AsyncConnection, name: str) -> int:
    return int(
        await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
                " AND datname = current_database() AND state LIKE 'idle in transaction%'"
            ),
            {"name": name},
        )
        or 0
    )


async def test_backend_killed_mid_request_is_503_then_a_keyed_retry_makes_one_row(
    make_engine: EngineMaker, watcher: AsyncConnection, side_engine: AsyncEngine
) -> None:
    engine, name = make_engine()
    async with serve(engine) as api:
        # No retries inside the store, so the kill reaches the client as it happens.
        api.app.state.stores.runs.retry_policy = RetryPolicy(attempts=1)
        headers = {**api.alice, "Idempotency-Key": "create-1"}
        async with side_engine.connect() as side:
            # An uncommitted run holding trace_id "T" makes the request's insert wait.
            await side.execute(
                text(
                    "INSERT INTO runs (id, actor, trace_id) "
                    "VALUES (gen_random_uuid(), 'alice', 'T')"
                )
            )
            request = asyncio.create_task(
                api.client.post("/runs", json={"name": "n", "trace_id": "T"}, headers=headers)
            )
            await wait_for_lock_wait(watcher, name)
            assert await terminate(watcher, name) >= 1
            killed = await asyncio.wait_for(request, 10)
            await side.rollback()

        assert killed.status_code == 503
        assert killed.headers["Retry-After"]
        assert "Traceback" not in killed.text
        assert "SELECT" not in killed.text
        assert await _runs(watcher, trace_id="T") == 0  # nothing half-written

        # The service recovered without a restart, and the client's retry lands once.
        retried = await api.client.post(
            "/runs", json={"name": "n", "trace_id": "T"}, headers=headers
        )
        assert retried.status_code == 201
        again = await api.client.post("/runs", json={"name": "n", "trace_id": "T"}, headers=headers)
        assert again.status_code == 200
        assert again.json()["id"] == retried.json()["id"]
        assert await _runs(watcher, trace_id="T") == 1


async def test_backend_killed_mid_request_is_absorbed_by_the_stores_retry(
    make_engine: EngineMaker, watcher: AsyncConnection, side_engine: AsyncEngine
) -> None:
    engine, name = make_engine()
    async with serve(engine) as api:
        api.app.state.stores.runs.retry_policy = RetryPolicy(attempts=3, backoff_seconds=0.3)
        run = (await api.client.post("/runs", json={}, headers=api.alice)).json()
        async with side_engine.connect() as side:
            await side.execute(select(Run.id).where(Run.id == run["id"]).with_for_update())
            request = asyncio.create_task(
                api.client.post(
                    f"/runs/{run['id']}/steps",
                    json=[{"step_index": 0}, {"step_index": 1}],
                    headers=api.alice,
                )
            )
            await wait_for_lock_wait(watcher, name)
            assert await terminate(watcher, name) >= 1
            await side.rollback()
            answer = await asyncio.wait_for(request, 10)

        assert answer.status_code == 201, answer.text
        assert await watcher.scalar(select(func.count()).select_from(Step)) == 2


async def test_exhausted_pool_is_503_with_retry_after_not_a_hang(make_engine: EngineMaker) -> None:
    engine, _ = make_engine(db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.5)
    async with serve(engine) as api:
        assert (await api.client.get("/runs", headers=api.alice)).status_code == 200
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))  # the pool's only connection, checked out
            started = time.monotonic()
            answer = await api.client.get("/runs", headers=api.alice)
            elapsed = time.monotonic() - started
        assert answer.status_code == 503
        assert int(answer.headers["Retry-After"]) >= 1
        assert elapsed < 3.0  # pool_timeout (0.5 s), not a hang; never retried
        assert (await api.client.get("/runs", headers=api.alice)).status_code == 200


async def test_slow_statement_is_504_and_the_connection_is_reused(
    make_engine: EngineMaker, side_engine: AsyncEngine
) -> None:
    engine, _ = make_engine(db_statement_timeout_ms=300, db_pool_size=1, db_max_overflow=0)
    async with serve(engine) as api:
        run = (await api.client.post("/runs", json={}, headers=api.alice)).json()
        async with engine.connect() as conn:
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        async with side_engine.connect() as side:
            await side.execute(select(Run.id).where(Run.id == run["id"]).with_for_update())
            slow = await api.client.patch(
                f"/runs/{run['id']}", json={"name": "slow"}, headers=api.alice
            )
            await side.rollback()
        assert slow.status_code == 504
        fast = await api.client.patch(
            f"/runs/{run['id']}", json={"name": "fast"}, headers=api.alice
        )
        assert fast.status_code == 200
        assert fast.json()["name"] == "fast"
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT pg_backend_pid()")) == pid


async def test_client_gone_mid_request_leaves_no_dirty_connection(
    make_engine: EngineMaker, watcher: AsyncConnection, side_engine: AsyncEngine
) -> None:
    """The request task is cancelled while its transaction waits on a lock."""
    engine, name = make_engine(db_pool_size=2, db_max_overflow=0)
    async with serve(engine) as api:
        run = (await api.client.post("/runs", json={}, headers=api.alice)).json()
        async with side_engine.connect() as side:
            await side.execute(select(Run.id).where(Run.id == run["id"]).with_for_update())
            request = asyncio.create_task(
                api.client.post(
                    f"/runs/{run['id']}/steps", json={"step_index": 0}, headers=api.alice
                )
            )
            await wait_for_lock_wait(watcher, name)
            request.cancel()
            await asyncio.gather(request, return_exceptions=True)
            await side.rollback()

        for _ in range(100):  # the pool returns (or discards) the connection promptly
            if engine.pool.checkedout() == 0 and not await _idle_in_transaction(watcher, name):  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert await _idle_in_transaction(watcher, name) == 0
        assert await watcher.scalar(select(func.count()).select_from(Step)) == 0
        # Every pooled connection still works.
        answers = await asyncio.gather(
            *(api.client.get(f"/runs/{run['id']}/steps", headers=api.alice) for _ in range(4))
        )
        assert [a.status_code for a in answers] == [200] * 4


async def test_same_idempotency_key_sent_concurrently_makes_exactly_one_run(
    make_engine: EngineMaker, watcher: AsyncConnection
) -> None:
    engine, _ = make_engine(db_pool_size=10, db_max_overflow=0)
    async with serve(engine) as api:
        headers = {**api.alice, "Idempotency-Key": "burst"}
        answers = await asyncio.gather(
            *(api.client.post("/runs", json={"name": "b"}, headers=headers) for _ in range(16))
        )
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == 1, codes
    assert set(codes) <= {200, 201, 409}, codes
    ids = {a.json()["id"] for a in answers if a.status_code in (200, 201)}
    assert len(ids) == 1
    assert await _runs(watcher, idempotency_key="burst") == 1


async def test_concurrent_step_appends_over_http_all_land_or_conflict(
    make_engine: EngineMaker, watcher: AsyncConnection
) -> None:
    engine, _ = make_engine(db_pool_size=10, db_max_overflow=0)
    async with serve(engine) as api:
        run = (await api.client.post("/runs", json={}, headers=api.alice)).json()
        url = f"/runs/{run['id']}/steps"
        distinct = await asyncio.gather(
            *(api.client.post(url, json={"step_index": i}, headers=api.alice) for i in range(12))
        )
        same = await asyncio.gather(
            *(
                api.client.post(url, json={"step_index": 100, "name": f"w{i}"}, headers=api.alice)
                for i in range(8)
            )
        )
    assert [a.status_code for a in distinct] == [201] * 12
    assert sorted(a.status_code for a in same) == [201] + [409] * 7
    indexes = (await watcher.execute(select(Step.step_index).order_by(Step.step_index))).all()
    assert [i for (i,) in indexes] == [*range(12), 100]
