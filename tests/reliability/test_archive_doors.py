"""Round three (issue 22), export and import: an export is checked before its first byte
and imports into an empty database; an import writes only what the API would accept,
only into the importing actor's data, and names the line of anything it refuses."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chad_memory import (
    InvalidInputError,
    LLMCallCreate,
    ModelPriceCreate,
    PostgresStore,
    PriceStore,
    RunCreate,
    ThreadCreate,
    ThreadStore,
)
from chad_memory.archive import ExportScope, export_to_file
from chad_memory.archive_import import import_file
from chad_memory.database import get_session_factory
from chad_memory.models import EMBEDDING_DIM
from tests.reliability.conftest import serve

EDGE_SINCE = (
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
)


async def test_export_since_an_edge_date_is_422_before_streaming(engine: AsyncEngine) -> None:
    """Class 8: these answered 200 and then broke the stream part-way."""
    async with serve(engine) as api:
        await api.client.post("/runs", json={"name": "mine"}, headers=api.alice)
        for since in EDGE_SINCE:
            answer = await api.client.get("/export", params={"since": since}, headers=api.alice)
            assert answer.status_code == 422, (since, answer.text[:300])
            assert answer.headers["content-type"] == "application/json"
            assert "since" in json.dumps(answer.json()["detail"])
        fine = await api.client.get(
            "/export", params={"since": "2000-01-01T00:00:00Z"}, headers=api.alice
        )
        assert fine.status_code == 200
        kinds = [json.loads(line)["kind"] for line in fine.text.splitlines()]
        assert kinds == ["header", "run"]


def test_library_export_scope_refuses_the_same_instants() -> None:
    for since in EDGE_SINCE:
        with pytest.raises(InvalidInputError, match="since"):
            ExportScope(actor="alice", since=datetime.fromisoformat(since))
    assert ExportScope(since=datetime(2000, 1, 1, tzinfo=UTC)).since == datetime(
        2000, 1, 1, tzinfo=UTC
    )


def _file(tmp_path: Path, *records: tuple[str, dict[str, Any]], actor: str = "alice") -> Path:
    path = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    lines = [{"kind": "header", "data": {"format": 1, "actor": actor, "since": None}}]
    lines += [{"kind": kind, "data": data} for kind, data in records]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            table: int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
            for table in ("threads", "messages", "runs", "steps", "llm_calls", "model_prices")
        }


async def test_an_export_with_its_prices_imports_into_an_empty_database(
    tmp_path: Path,
    engine: AsyncEngine,
    other_engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Class 17: calls priced from the actor's own price table named a price the export
    left out, so importing into an empty database failed and imported nothing."""
    prices, store = PriceStore(session_factory), PostgresStore(session_factory)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for actor in ("alice", "bob"):
        await prices.set_price(
            ModelPriceCreate(
                provider="acme",
                model_pattern="acme-1",
                starts_at=start,
                input_mtok=2,
                output_mtok=8,
            ),
            actor=actor,
        )
    run = await store.save_run(RunCreate(actor="alice", name="priced"))
    call = await store.save_llm_call(
        LLMCallCreate(
            run_id=run.id, provider="acme", model="acme-1", prompt_tokens=1000, completion_tokens=10
        )
    )
    assert call.price_id is not None
    path = tmp_path / "alice.jsonl"
    exported = await export_to_file(engine, path, ExportScope(actor="alice"))
    assert exported.rows["price"] == 1  # alice's, not bob's

    imported = await import_file(other_engine, path, actor="alice")
    assert imported.rows["price"] == 1
    assert imported.rows["llm_call"] == 1
    assert imported.unlinked == 0
    copied = await PostgresStore(get_session_factory(other_engine)).get_llm_calls(run.id)
    assert [(c.price_id, c.cost_usd) for c in copied] == [(call.price_id, call.cost_usd)]
    again = await import_file(other_engine, path, actor="alice")
    assert again.total == 0


async def test_import_writes_only_into_the_importing_actors_data(
    tmp_path: Path, engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Class 18: rows naming bob's run and thread were skipped as "already present", and
    the new steps and messages under them went into bob's run and thread."""
    store, threads = PostgresStore(session_factory), ThreadStore(session_factory)
    bobs_run = await store.save_run(RunCreate(actor="bob", name="bob's"))
    bobs_thread = await threads.create_thread(ThreadCreate(agent_type="chat"), actor="bob")

    def new() -> str:
        return str(uuid.uuid4())

    thread = {"id": str(bobs_thread.id), "actor": "alice", "title": "t", "agent_type": "chat"}
    message = {"id": new(), "thread_id": str(bobs_thread.id), "role": "user", "content": "hi"}
    run = {"id": str(bobs_run.id), "actor": "alice"}
    step = {"id": new(), "run_id": str(bobs_run.id), "step_index": 7}
    mine = {"id": new(), "actor": "alice"}
    cases: list[tuple[list[tuple[str, dict[str, Any]]], str]] = [
        ([("thread", thread), ("message", message)], r"line 2: thread .* belongs to another"),
        ([("run", run), ("step", step)], r"line 2: run .* belongs to another actor"),
        ([("message", message)], r"line 2: message belongs to another actor"),
        ([("step", step)], r"line 2: step belongs to another actor"),
        ([("run", mine), ("llm_call", {**step, "actor": "alice"})], "line 3: llm_call"),
        (
            [("run", {**mine, "thread_id": str(bobs_thread.id)})],
            "line 2: run: thread_id names another actor's thread",
        ),
        ([("run", {**mine, "actor": "bob"})], "line 2: run belongs to another actor"),
        ([("step", {**step, "run_id": new()})], "line 2: step: run .* is neither in the file"),
    ]
    before = await _counts(engine)
    for records, message_pattern in cases:
        with pytest.raises(InvalidInputError, match=message_pattern):
            await import_file(engine, _file(tmp_path, *records), actor="alice")
    assert await _counts(engine) == before
    # The whole-database restore keeps each row with its own owner's parents too.
    for records, message_pattern in (cases[0], cases[1], cases[5]):
        with pytest.raises(InvalidInputError, match=message_pattern):
            await import_file(engine, _file(tmp_path, *records), actor=None)
    assert await _counts(engine) == before


async def test_import_refuses_what_the_api_refuses(tmp_path: Path, engine: AsyncEngine) -> None:
    """Class 19: a string as tags became a character array, 9999-12-31T23:59:59.999999
    became `infinity` (and broke paging), an empty actor was stored."""
    run: dict[str, Any] = {"id": str(uuid.uuid4()), "actor": "alice"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**run, "tags": "abc"}, "tags"),
        ({**run, "created_at": "9999-12-31T23:59:59.999999"}, "created_at.*storable range"),
        ({**run, "created_at": "0001-01-01T00:00:00+00:00"}, "created_at"),
        ({**run, "actor": ""}, "actor"),
        ({**run, "status": "bogus"}, "status"),
        ({**run, "metadata": None}, "metadata"),
        ({**run, "name": "nul\x00"}, "name"),
        ({**run, "request_payload": {"a": float("inf")}}, "request_payload"),
        ({**run, "unknown": 1}, "unknown"),
    ]
    for data, field in cases:
        with pytest.raises(InvalidInputError, match=f"line 2: run: .*{field}"):
            await import_file(engine, _file(tmp_path, ("run", data)), actor="alice")
    assert (await _counts(engine))["runs"] == 0
    vector = {"id": str(uuid.uuid4()), "actor": "alice", "namespace": "n"}
    for embedding, reason in (([1.0, 2.0, 3.0], "dimensions"), ([0.0] * EMBEDDING_DIM, "")):
        path = _file(tmp_path, ("embedding", {**vector, "embedding": embedding}))
        with pytest.raises(InvalidInputError, match=f"line 2: embedding: .*{reason}"):
            await import_file(engine, path, actor="alice")


@pytest.mark.parametrize(
    "data",
    [
        {"actor": "alice"},
        {"id": 123, "actor": "alice"},
        {"id": None, "actor": "alice"},
        {"id": str(uuid.uuid4()), "actor": "alice", "created_at": 1_700_000_000},
        {"id": str(uuid.uuid4()), "actor": ["alice"]},
        {"id": {"x": 1}, "actor": "alice"},
    ],
)
async def test_every_bad_line_is_refused_with_its_number(
    tmp_path: Path, engine: AsyncEngine, data: dict[str, Any]
) -> None:
    """Class 20: a row without id, a numeric id or a numeric created_at ended in a
    Python traceback."""
    fine = {"id": str(uuid.uuid4()), "actor": "alice"}
    path = _file(tmp_path, ("run", fine), ("run", data))
    with pytest.raises(InvalidInputError, match=r"^line 3: run: "):
        await import_file(engine, path, actor="alice")
    assert (await _counts(engine))["runs"] == 0


async def test_the_cli_names_the_line_without_a_traceback(
    tmp_path: Path, database_url: str
) -> None:
    path = _file(tmp_path, ("run", {"id": 5, "actor": "alice"}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chad_memory.cli",
        "import",
        str(path),
        "--actor",
        "alice",
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1
    assert "line 2: run: id" in out.decode()
    assert "Traceback" not in out.decode()


async def test_two_different_rows_with_one_id_name_both_lines(
    tmp_path: Path, engine: AsyncEngine
) -> None:
    """Class 21: the second was dropped silently and counted as "already present"."""
    run = {"id": str(uuid.uuid4()), "actor": "alice", "name": "first"}
    other = {"id": str(uuid.uuid4()), "actor": "alice"}
    path = _file(tmp_path, ("run", run), ("run", other), ("run", {**run, "name": "second"}))
    with pytest.raises(
        InvalidInputError, match=rf"lines 2 and 4: two different run rows .*{run['id']}"
    ):
        await import_file(engine, path, actor="alice")
    assert (await _counts(engine))["runs"] == 0
    # The same row twice is one row.
    same = _file(tmp_path, ("run", run), ("run", other), ("run", dict(reversed(run.items()))))
    counts = await import_file(engine, same, actor="alice")
    assert counts.rows["run"] == 2
    assert counts.skipped == 1
