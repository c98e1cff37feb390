"""trace_id is unique per actor (revision 006): one actor's trace ids tell nobody anything.

Before 006 a global unique index made bob's run with alice's trace id a 409: bob learnt
the id exists and could take ids alice would use later. Downgrading refuses while two
actors share a trace id (and changes nothing), and works once they do not.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from chad_memory.errors import ConflictError
from chad_memory.migrations import downgrade, upgrade
from chad_memory.schemas import RunCreate
from chad_memory.stores import PostgresStore
from tests.database import run_admin, unique_name, with_database
from tests.reliability.conftest import EngineMaker, serve


async def test_another_actors_trace_id_is_neither_revealed_nor_taken(
    make_engine: EngineMaker, watcher: AsyncConnection
) -> None:
    engine, _ = make_engine()
    async with serve(engine) as api:
        c = api.client
        alice = await c.post("/runs", json={"name": "a", "trace_id": "T-1"}, headers=api.alice)
        assert alice.status_code == 201
        # bob's create with alice's trace id answers exactly as with a fresh one.
        squat = await c.post("/runs", json={"name": "b", "trace_id": "T-1"}, headers=api.bob)
        fresh = await c.post("/runs", json={"name": "b", "trace_id": "T-2"}, headers=api.bob)
        assert (squat.status_code, fresh.status_code) == (201, 201)
        assert squat.json()["actor"] == "bob"
        # Each sees only their own run for the trace; alice's is untouched.
        for headers, name in ((api.alice, "a"), (api.bob, "b")):
            page = (await c.get("/runs", params={"trace_id": "T-1"}, headers=headers)).json()
            assert [r["name"] for r in page["items"]] == [name]
        assert (await c.get(f"/runs/{alice.json()['id']}", headers=api.alice)).json() == {
            **alice.json(),
            "artifacts": [],
        }
        # Per actor, one run per trace still holds.
        again = await c.post("/runs", json={"trace_id": "T-1"}, headers=api.bob)
        assert again.status_code == 409


async def test_library_keeps_one_run_per_trace_per_actor(store: PostgresStore) -> None:
    a = await store.save_run(RunCreate(actor="alice", trace_id="T"))
    b = await store.save_run(RunCreate(actor="bob", trace_id="T"))
    assert a.id != b.id
    with pytest.raises(ConflictError):
        await store.save_run(RunCreate(actor="alice", trace_id="T"))


async def test_downgrade_refuses_shared_trace_ids_and_keeps_the_data(admin_url: str) -> None:
    name = unique_name("chad_mig006")
    await run_admin(admin_url, f'CREATE DATABASE "{name}"')
    url = with_database(admin_url, name)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await asyncio.to_thread(upgrade, url, "006")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO runs (id, actor, trace_id) VALUES "
                    "(gen_random_uuid(), 'alice', 'T'), (gen_random_uuid(), 'bob', 'T'), "
                    "(gen_random_uuid(), 'bob', 'U')"
                )
            )
        with pytest.raises(RuntimeError, match=r"1 trace id.*more than one actor"):
            await asyncio.to_thread(downgrade, url, "-1")
        async with engine.connect() as conn:
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            rows = (await conn.execute(text("SELECT actor, trace_id FROM runs"))).all()
        assert version == "006"
        assert sorted(map(tuple, rows)) == [("alice", "T"), ("bob", "T"), ("bob", "U")]

        # Once the operator has cleared the shared id, the downgrade goes through, data kept.
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE runs SET trace_id = NULL WHERE actor = 'bob' AND trace_id = 'T'")
            )
        await asyncio.to_thread(downgrade, url, "-1")
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM runs")) == 3
            constraints = set(
                (
                    await conn.execute(
                        text("SELECT conname FROM pg_constraint WHERE conrelid = 'runs'::regclass")
                    )
                ).scalars()
            )
        assert "uq_runs_trace_id" in constraints
        assert "uq_runs_actor_trace_id" not in constraints
    finally:
        await engine.dispose()
        await run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
