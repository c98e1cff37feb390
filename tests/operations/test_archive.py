"""Export and import: a round trip keeps every row and column; a repeat changes nothing."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chad_memory import InvalidInputError, PgVectorStore, PostgresStore, ThreadStore
from chad_memory.archive import KINDS, ExportScope, export_to_file
from chad_memory.archive_import import import_file
from tests.operations.seed import seed


async def _snapshot(engine: AsyncEngine, actor: str | None = None) -> dict[str, list[Any]]:
    """Every row of every exported table (one actor's, when given), as comparable tuples."""
    scope = ExportScope(actor=actor)
    from chad_memory.archive import _conditions

    out: dict[str, list[Any]] = {}
    async with engine.connect() as conn:
        for kind, table in KINDS:
            rows = await conn.execute(
                select(table).where(*_conditions(kind, scope)).order_by(table.c.id)
            )
            out[kind] = [
                tuple(v.tolist() if hasattr(v, "tolist") else v for v in row) for row in rows
            ]
    return out


async def test_round_trip_of_one_actor_is_exact_and_idempotent(
    tmp_path: Path,
    engine: AsyncEngine,
    other_engine: AsyncEngine,
    store: PostgresStore,
    vector_store: PgVectorStore,
    thread_store: ThreadStore,
) -> None:
    await seed(engine, store, vector_store, thread_store, runs_per_actor=3)
    async with engine.begin() as conn:  # a LangGraph store item (its own table)
        await conn.execute(
            text(
                "INSERT INTO store_items (actor, prefix, key, value) "
                "VALUES ('alice', 'memories.user', 'k', '{\"likes\": [1, 2]}')"
            )
        )
    path = tmp_path / "alice.jsonl.gz"
    counts = await export_to_file(engine, path, ExportScope(actor="alice"))
    assert counts.rows == {
        "thread": 1,
        "message": 2,
        "run": 3,
        "step": 9,
        "price": 0,
        "llm_call": 3,
        "artifact": 3,
        "store_item": 1,
        "embedding": 3,
        # Scores, datasets and experiments: tests/operations/test_archive_scores.py.
        **dict.fromkeys(("score_config", "score", "dataset", "dataset_item", "experiment"), 0),
    }
    with gzip.open(path, "rt") as lines:
        records = [json.loads(line) for line in lines]
    assert records[0]["kind"] == "header"
    assert all(r["data"].get("actor", "alice") == "alice" for r in records[1:])
    embedding = next(r for r in records if r["kind"] == "embedding")
    assert len(embedding["data"]["embedding"]) > 1

    imported = await import_file(other_engine, path, actor="alice")
    assert imported.rows == counts.rows
    assert imported.unlinked == 0
    original = await _snapshot(engine, "alice")
    assert await _snapshot(other_engine) == original

    again = await import_file(other_engine, path, actor="alice")
    assert again.total == 0
    assert again.skipped == counts.total
    assert await _snapshot(other_engine) == original


async def test_export_everything_plain_text_and_since(
    tmp_path: Path,
    engine: AsyncEngine,
    other_engine: AsyncEngine,
    store: PostgresStore,
    vector_store: PgVectorStore,
    thread_store: ThreadStore,
) -> None:
    data = await seed(engine, store, vector_store, thread_store, runs_per_actor=2, old_per_actor=1)
    everything = tmp_path / "all.jsonl"
    counts = await export_to_file(engine, everything)
    assert counts.rows["run"] == 4
    await import_file(other_engine, everything, actor=None)
    assert await _snapshot(other_engine) == await _snapshot(engine)

    # --since leaves the backdated runs out; their steps go with them.
    async with engine.connect() as conn:
        recent = await conn.scalar(
            text("SELECT min(created_at) FROM runs WHERE NOT (id = ANY(:old))"),
            {"old": list(data.old)},
        )
    newer = await export_to_file(engine, tmp_path / "new.jsonl", ExportScope(since=recent))
    assert newer.rows["run"] == 2
    assert newer.rows["step"] == 6


async def test_import_refuses_bad_files_and_changes_nothing(
    tmp_path: Path, engine: AsyncEngine
) -> None:
    cases = {
        "not-json.jsonl": '{"kind": "header", "data": {"format": 1}}\n{oops\n',
        "unknown-kind.jsonl": (
            '{"kind": "header", "data": {"format": 1}}\n{"kind": "x", "data": {}}\n'
        ),
        "future.jsonl": '{"kind": "header", "data": {"format": 99}}\n',
        "shape.jsonl": "[1, 2]\n",
        "column.jsonl": (
            '{"kind": "thread", "data": {"id": "00000000-0000-0000-0000-000000000001", '
            '"actor": "a", "title": "t", "agent_type": "c", "nope": 1}}\n'
        ),
    }
    for name, body in cases.items():
        path = tmp_path / name
        path.write_text(body)
        with pytest.raises(InvalidInputError):
            await import_file(engine, path, actor="a")
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM threads")) == 0


async def test_cli_export_then_import(
    tmp_path: Path,
    database_url: str,
    engine: AsyncEngine,
    other_engine: AsyncEngine,
    store: PostgresStore,
    vector_store: PgVectorStore,
    thread_store: ThreadStore,
) -> None:
    await seed(engine, store, vector_store, thread_store, runs_per_actor=1, old_per_actor=0)

    async def cli(url: str, *args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chad_memory.cli",
            *args,
            env={**os.environ, "DATABASE_URL": url},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        return proc.returncode or 0, out.decode()

    out_file = tmp_path / "bob.jsonl.gz"
    code, out = await cli(database_url, "export", "--actor", "bob", "--out", str(out_file))
    assert code == 0, out
    assert "exported 10 rows" in out
    target = other_engine.url.render_as_string(hide_password=False)
    code, out = await cli(target, "import", str(out_file), "--actor", "bob")
    assert code == 0, out
    assert "imported 10 rows (0 already present" in out
    code, out = await cli(target, "import", str(out_file), "--actor", "bob")
    assert "imported 0 rows (10 already present" in out
    code, out = await cli(target, "import", str(tmp_path / "missing.jsonl"), "--actor", "bob")
    assert code == 1
    assert "no such file" in out
    code, out = await cli(
        database_url, "export", "--out", str(tmp_path / "x.jsonl"), "--since", "soon"
    )
    assert code == 1
    assert "--since" in out
