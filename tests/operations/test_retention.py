"""Retention: `prune` deletes what it should, in batches, without waiting on writers."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory import (
    InvalidInputError,
    PgVectorStore,
    PostgresStore,
    RunFilter,
    ThreadStore,
)
from chad_memory.retention import PruneCriteria, PruneResult, parse_duration, prune
from tests.operations.seed import seed


@pytest.mark.parametrize(
    ("text_", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_parse_duration(text_: str, expected: timedelta) -> None:
    assert parse_duration(text_) == expected


@pytest.mark.parametrize("bad", ["", "90", "d", "-1d", "1.5d", "0d", "90 days", "1w"])
def test_parse_duration_refuses(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_duration(bad)


def test_criteria_refuse_unknown_status_and_naive_cutoff() -> None:
    with pytest.raises(InvalidInputError):
        PruneCriteria(cutoff=datetime.now(UTC), status="done")
    with pytest.raises(InvalidInputError):
        PruneCriteria(cutoff=datetime(2026, 1, 1))


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        out = {}
        for table in ("runs", "steps", "llm_calls", "artifacts", "embeddings", "messages"):
            out[table] = int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
        return out


async def test_prune_deletes_old_runs_with_children_in_batches(
    engine: AsyncEngine,
    store: PostgresStore,
    vector_store: PgVectorStore,
    thread_store: ThreadStore,
) -> None:
    data = await seed(engine, store, vector_store, thread_store, runs_per_actor=5, old_per_actor=3)
    before = await _counts(engine)
    criteria = PruneCriteria.older_than(timedelta(days=90))

    dry = await prune(engine, criteria, dry_run=True)
    assert dry.deleted == {
        "runs": 6,
        "steps": 18,
        "llm_calls": 6,
        "artifacts": 6,
        "embeddings": 6,
    }
    assert await _counts(engine) == before  # a dry run deletes nothing

    seen: list[int] = []

    def progress(result: PruneResult) -> None:
        seen.append(result.deleted["runs"])

    result = await prune(engine, criteria, batch_size=4, progress=progress)
    assert result.deleted["runs"] == 6
    assert result.deleted["steps"] == 18
    assert result.batches == 2
    assert seen == [4, 6]
    assert result.vacuumed == "VACUUM"
    after = await _counts(engine)
    assert after["runs"] == before["runs"] - 6
    assert after["steps"] == before["steps"] - 18
    assert after["llm_calls"] == before["llm_calls"] - 6
    assert after["artifacts"] == before["artifacts"] - 6
    # Embeddings stay by default, unlinked from the runs that went.
    assert after["embeddings"] == before["embeddings"]
    assert after["messages"] == before["messages"]
    for actor, ids in data.runs.items():
        remaining = {r.id for r in (await store.list_runs(RunFilter(actor=actor), limit=50)).items}
        assert remaining == {i for i in ids if i not in data.old}
    async with engine.connect() as conn:
        unlinked = await conn.scalar(text("SELECT count(*) FROM embeddings WHERE run_id IS NULL"))
    assert unlinked == 6
    # Nothing left to do: a second pass deletes nothing.
    assert (await prune(engine, criteria)).deleted["runs"] == 0


async def test_prune_by_actor_status_and_with_embeddings(
    engine: AsyncEngine,
    store: PostgresStore,
    vector_store: PgVectorStore,
    thread_store: ThreadStore,
) -> None:
    data = await seed(engine, store, vector_store, thread_store, runs_per_actor=4, old_per_actor=4)
    criteria = PruneCriteria.older_than(
        timedelta(days=90), actor="alice", status="failed", embeddings=True
    )
    result = await prune(engine, criteria)
    assert result.deleted["runs"] == 2  # alice's old runs 1 and 3 failed
    assert result.deleted["embeddings"] == 2
    alice = {r.id for r in (await store.list_runs(RunFilter(actor="alice"), limit=50)).items}
    assert alice == {data.runs["alice"][0], data.runs["alice"][2]}
    assert len((await store.list_runs(RunFilter(actor="bob"), limit=50)).items) == 4


async def test_prune_skips_a_run_a_writer_holds_instead_of_waiting(
    engine: AsyncEngine,
    store: PostgresStore,
    vector_store: PgVectorStore,
    thread_store: ThreadStore,
) -> None:
    data = await seed(engine, store, vector_store, thread_store, runs_per_actor=2, old_per_actor=2)
    held = data.runs["alice"][0]
    async with engine.connect() as writer:
        await writer.execute(text("SELECT 1 FROM runs WHERE id = :id FOR UPDATE"), {"id": held})
        result = await asyncio.wait_for(
            prune(engine, PruneCriteria.older_than(timedelta(days=90)), vacuum=False), 10
        )
        assert result.deleted["runs"] == 3
        await writer.rollback()
    assert [r.id for r in (await store.list_runs(RunFilter(actor="alice"), limit=50)).items] == [
        held
    ]


async def test_cli_prune(
    database_url: str,
    engine: AsyncEngine,
    store: PostgresStore,
    vector_store: PgVectorStore,
    thread_store: ThreadStore,
) -> None:
    await seed(engine, store, vector_store, thread_store, runs_per_actor=3, old_per_actor=1)
    env = {**os.environ, "DATABASE_URL": database_url}

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chad_memory.cli",
            "prune",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        return proc.returncode or 0, out.decode()

    code, out = await cli("--older-than", "90d", "--dry-run")
    assert code == 0, out
    assert "would delete 2 runs" in out
    assert len((await store.list_runs(RunFilter(actor="alice"), limit=50)).items) == 3
    code, out = await cli("--older-than", "forever")
    assert code == 1
    assert "duration" in out
    code, out = await cli("--older-than", "90d", "--actor", "bob")
    assert code == 0, out
    assert "deleted 1 runs" in out
    assert len((await store.list_runs(RunFilter(actor="bob"), limit=50)).items) == 2
    assert len((await store.list_runs(RunFilter(actor="alice"), limit=50)).items) == 3
