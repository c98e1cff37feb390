"""Revisions 016 and 017 on calls already stored: start times and the order they were
listed in are back-filled, OTLP calls get their two model names and the usage rule's
name (the roll-ups follow), and the downgrades keep every row."""

from __future__ import annotations

import asyncio

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from chad_memory.migrations import alembic_config, downgrade, upgrade
from tests.test_migrations import _scalar_rows, empty_db

__all__ = ["empty_db"]

# The revision the calls' chain starts from (016's down revision).
_SCRIPT = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://unused/x"))
_STARTED_AT = _SCRIPT.get_revision("016_llm_call_started_at")
assert _STARTED_AT is not None
BEFORE = str(_STARTED_AT.down_revision)

RUN = "00000000-0000-0000-0000-000000000001"
OTLP_STEP = "00000000-0000-0000-0000-0000000000f1"
API_STEP = "00000000-0000-0000-0000-0000000000f2"
_SETUP = (
    f"INSERT INTO runs (id, actor, status) VALUES ('{RUN}', 'alice', 'running')",
    "INSERT INTO steps (id, run_id, step_index, started_at, metadata) VALUES "
    f"('{OTLP_STEP}', '{RUN}', 0, '2026-01-01T00:00:05Z', '{{\"otel\": {{}}}}'), "
    f"('{API_STEP}', '{RUN}', 1, '2026-01-01T00:00:01Z', '{{}}')",
    # As OTLP stored a call before 017: model = the response's name, both in JSON.
    "INSERT INTO llm_calls (id, run_id, step_id, model, request, response, created_at) "
    f"VALUES ('00000000-0000-0000-0000-00000000000a', '{RUN}', '{OTLP_STEP}', "
    "'gpt-4o-mini-2024-07-18', '{\"model\": \"gpt-4o-mini\"}', "
    "'{\"model\": \"gpt-4o-mini-2024-07-18\"}', '2026-01-02T00:00:00Z'), "
    # An API call with the same JSON keeps its model as sent.
    f"('00000000-0000-0000-0000-00000000000b', '{RUN}', '{API_STEP}', "
    "'gpt-4o-mini-2024-07-18', '{\"model\": \"gpt-4o-mini\"}', "
    "'{\"model\": \"gpt-4o-mini-2024-07-18\"}', '2026-01-02T00:00:00Z'), "
    # No step: starts when it was stored.
    f"('00000000-0000-0000-0000-00000000000c', '{RUN}', NULL, 'm', '[1]', '\"x\"', "
    "'2026-01-01T00:00:03Z')",
)


async def test_016_and_017_backfill_and_walk_down(empty_db: str) -> None:
    await asyncio.to_thread(upgrade, empty_db, BEFORE)
    engine = create_async_engine(empty_db, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            for statement in _SETUP:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()
    await asyncio.to_thread(upgrade, empty_db, "head")
    listed = "SELECT string_agg(right(id::text, 1), '' ORDER BY started_at, seq, id) FROM llm_calls"
    # b started with its step at :01, c was stored at :03, a started with its step at :05.
    assert await _scalar_rows(empty_db, listed) == {"bca"}
    names = (
        "SELECT right(id::text, 1) || ':' || coalesce(model, '-') || ':' "
        "|| coalesce(request_model, '-') || ':' || coalesce(response_model, '-') FROM llm_calls"
    )
    assert await _scalar_rows(empty_db, names) == {
        "a:gpt-4o-mini:gpt-4o-mini:gpt-4o-mini-2024-07-18",
        "b:gpt-4o-mini-2024-07-18:-:-",
        "c:m:-:-",
    }
    usage = "SELECT model || ':' || calls FROM llm_usage_hourly"
    assert await _scalar_rows(empty_db, usage) == {
        "gpt-4o-mini:1",
        "gpt-4o-mini-2024-07-18:1",
        "m:1",
    }
    await asyncio.to_thread(downgrade, empty_db, BEFORE)
    kept = "SELECT right(id::text, 1) || ':' || model FROM llm_calls"
    assert await _scalar_rows(empty_db, kept) == {
        "a:gpt-4o-mini",
        "b:gpt-4o-mini-2024-07-18",
        "c:m",
    }
    assert await _scalar_rows(empty_db, usage) == {
        "gpt-4o-mini:1",
        "gpt-4o-mini-2024-07-18:1",
        "m:1",
    }
