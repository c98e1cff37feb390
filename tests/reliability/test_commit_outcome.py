"""The "outcome unknown" rule on every path that commits (issue 22, class 22).

A connection lost after COMMIT was sent may or may not have committed: the store must
raise a non-retryable DatabaseUnavailableError and never run the unit of work again. The
library commits through two seams, `transaction` (ORM session) and `driver_transaction`
(the asyncpg connection: `save_run`, `create_run`, `save_steps`), so the
rule is checked through store methods on both.

The fault is real: a deferred constraint trigger runs inside COMMIT, counts itself on a
sequence (nextval survives the abort) and terminates its own backend. The client has
sent COMMIT and gets the connection's end back, exactly the case the rule is about.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chad_memory import (
    DatabaseUnavailableError,
    PostgresStore,
    RunCreate,
    RunUpdate,
    StepCreate,
)
from chad_memory.database import get_session_factory
from chad_memory.otlp import TraceStore, export_traces
from chad_memory.schemas import LLMCallCreate
from chad_memory.stores.transactions import RetryPolicy
from tests.reliability.conftest import EngineMaker

RETRIES = RetryPolicy(attempts=3, backoff_seconds=0.01)


async def _die_during_commit(conn: AsyncConnection, table: str) -> None:
    """From now on every COMMIT of a transaction that wrote `table` kills its backend."""
    await conn.execute(text("CREATE SEQUENCE commit_deaths"))
    await conn.execute(
        text(
            """
            CREATE FUNCTION die_in_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM nextval('commit_deaths');
                PERFORM pg_terminate_backend(pg_backend_pid());
                RETURN NULL;
            END $$
            """
        )
    )
    await conn.execute(
        text(
            f"CREATE CONSTRAINT TRIGGER die_in_commit AFTER INSERT OR UPDATE ON {table}"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION die_in_commit()"
        )
    )


def _otlp_request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = uuid.uuid4().bytes
    span.span_id = uuid.uuid4().bytes[:8]
    span.name = "root"
    span.start_time_unix_nano = 1_700_000_000_000_000_000
    span.end_time_unix_nano = 1_700_000_001_000_000_000
    return request


Write = Callable[[PostgresStore, TraceStore, uuid.UUID], Awaitable[object]]


async def _save_run(store: PostgresStore, _: TraceStore, run_id: uuid.UUID) -> object:
    return await store.save_run(RunCreate(id=uuid.uuid4(), actor="alice"))


async def _create_run(store: PostgresStore, _: TraceStore, run_id: uuid.UUID) -> object:
    return await store.create_run(RunCreate(actor="alice", idempotency_key="k"))


async def _save_steps(store: PostgresStore, _: TraceStore, run_id: uuid.UUID) -> object:
    return await store.save_steps(
        [StepCreate(run_id=run_id, step_index=1, name="s")], actor="alice"
    )


async def _otlp(_: PostgresStore, traces: TraceStore, run_id: uuid.UUID) -> object:
    return await export_traces(traces, _otlp_request(), actor="alice")


async def _update_run(store: PostgresStore, _: TraceStore, run_id: uuid.UUID) -> object:
    return await store.update_run(run_id, RunUpdate(name="renamed"), actor="alice")


async def _save_llm_call(store: PostgresStore, _: TraceStore, run_id: uuid.UUID) -> object:
    return await store.save_llm_call(
        LLMCallCreate(run_id=run_id, provider="openai", model="gpt-4o"), actor="alice"
    )


# (path, table the trigger watches, the store call)
CASES = [
    ("driver", "runs", _save_run),
    ("driver", "runs", _create_run),
    ("driver", "steps", _save_steps),
    ("orm", "runs", _otlp),
    ("orm", "runs", _update_run),
    ("orm", "llm_calls", _save_llm_call),
]


@pytest.mark.parametrize(
    ("path", "table", "write"),
    CASES,
    ids=[f"{path}-{write.__name__.lstrip('_')}" for path, _, write in CASES],
)
async def test_connection_lost_after_commit_was_sent_is_not_retried(
    make_engine: EngineMaker,
    watcher: AsyncConnection,
    path: str,
    table: str,
    write: Write,
) -> None:
    engine: AsyncEngine
    engine, _ = make_engine()
    factory = get_session_factory(engine)
    store = PostgresStore(factory, retry_policy=RETRIES)
    traces = TraceStore(factory, retry_policy=RETRIES)
    run = await store.save_run(RunCreate(actor="alice"))
    await _die_during_commit(watcher, table)

    with pytest.raises(DatabaseUnavailableError) as caught:
        await write(store, traces, run.id)

    assert "outcome unknown" in str(caught.value)
    assert not caught.value.retryable
    # COMMIT was sent once: the unit of work was not run again (3 attempts are allowed).
    assert await watcher.scalar(text("SELECT last_value FROM commit_deaths")) == 1
    # The pool recovers: the next call on the same store works once the fault is gone.
    await watcher.execute(text(f"DROP TRIGGER die_in_commit ON {table}"))
    assert (await store.get_run(run.id)).id == run.id
