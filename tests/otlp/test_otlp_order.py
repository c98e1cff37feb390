"""Calls in the order they ran: a run's steps and LLM calls are listed by start time, then
the order they were sent, through the library, the API's pages and exports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chad_memory.archive import export_records
from chad_memory.otlp import TraceStore, export_traces
from chad_memory.schemas import LLMCallCreate, RunCreate, StepCreate
from chad_memory.stores import PostgresStore
from tests.api.conftest import Api

TRACE = bytes.fromhex("1af7651916cd43dd8448eb211c80319c")
ROOT = "0000000000000f00"
BASE_NS = 1_700_000_000_000_000_000


def _request(*spans: tuple[str, str, int]) -> ExportTraceServiceRequest:
    """LLM spans (id, name, start in ms) under ROOT, in the order given; ROOT first."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    root = scope.spans.add()
    root.trace_id, root.span_id, root.name = TRACE, bytes.fromhex(ROOT), "agent"
    root.start_time_unix_nano, root.end_time_unix_nano = BASE_NS, BASE_NS + 10**9
    for span_id, name, start_ms in spans:
        span = scope.spans.add()
        span.trace_id = TRACE
        span.span_id = bytes.fromhex(span_id)
        span.parent_span_id = bytes.fromhex(ROOT)
        span.name = name
        span.start_time_unix_nano = BASE_NS + start_ms * 1_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + 5_000_000
        for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", name)):
            attribute = span.attributes.add()
            attribute.key, attribute.value.string_value = key, value
    return request


async def test_otlp_calls_and_steps_in_start_then_sent_order(
    session_factory: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    traces, runs = TraceStore(session_factory), PostgresStore(session_factory)
    # Span ids chosen so that id order is the reverse of the order sent.
    sent = _request(
        ("00000000000000f1", "third", 30),
        ("00000000000000e2", "first", 10),
        ("00000000000000d3", "tie-sent-first", 40),
        ("00000000000000c4", "tie-sent-second", 40),
        ("00000000000000b5", "second", 20),
    )
    assert (await export_traces(traces, sent, actor="al")).stored == 6
    # A later export with a call that started before all of them is listed first.
    later = await export_traces(traces, _request(("00000000000000a6", "zeroth", 5)), actor="al")
    assert later.stored == 1
    [run] = (await runs.list_runs()).items
    order = ["zeroth", "first", "second", "third", "tie-sent-first", "tie-sent-second"]
    assert [c.model for c in await runs.get_llm_calls(run.id)] == order
    assert [s.name for s in await runs.get_steps(run.id)] == ["agent", *order]
    calls = await runs.get_llm_calls(run.id)
    assert calls[0].started_at == datetime.fromtimestamp(BASE_NS / 1e9 + 0.005, UTC)
    # Pages a call at a time walk the same order.
    seen, cursor = [], None
    while True:
        page = await runs.list_llm_calls(run.id, limit=1, cursor=cursor)
        seen += [c.model for c in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == order
    exported = [r["data"]["model"] async for r in export_records(engine) if r["kind"] == "llm_call"]
    assert exported == order


async def test_api_calls_take_their_start_or_their_steps(api: Api) -> None:
    store = api.store
    run = await store.save_run(RunCreate(name="r", actor="alice"))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    step = await store.save_step(
        StepCreate(run_id=run.id, step_index=0, started_at=t0 + timedelta(seconds=2))
    )
    headers = api.alice
    late = {"model": "late", "started_at": (t0 + timedelta(seconds=9)).isoformat()}
    early = {"model": "early", "started_at": t0.isoformat()}
    with_step = {"model": "with-step", "step_id": str(step.id)}
    for body in (late, early, with_step, {"model": "unstamped"}):
        answer = await api.client.post(f"/runs/{run.id}/llm-calls", json=body, headers=headers)
        assert answer.status_code == 201, answer.text
    listed = (await api.client.get(f"/runs/{run.id}/llm-calls", headers=headers)).json()
    assert [c["model"] for c in listed] == ["early", "with-step", "late", "unstamped"]
    assert listed[1]["started_at"] == "2026-01-01T00:00:02Z"
    bad = await api.client.post(
        f"/runs/{run.id}/llm-calls", json={"started_at": "yesterday"}, headers=headers
    )
    assert bad.status_code == 422
    # The library caller gets the same default.
    call = await store.save_llm_call(LLMCallCreate(run_id=run.id, step_id=step.id))
    assert call.started_at == step.started_at
    assert call.seq > listed[-1]["seq"]
    assert uuid.UUID(listed[0]["id"])
