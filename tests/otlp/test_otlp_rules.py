"""The rules under OTLP ingest: json_text agrees with check_json, a continued trace is
re-ordered and re-linked in the database, and a database outage is a 503 to retry."""

from __future__ import annotations

import math

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from apps.core_api.main import create_app
from bench.common import free_port
from chad_memory.database import create_engine
from chad_memory.errors import InvalidInputError
from chad_memory.otlp import TraceStore, export_traces
from chad_memory.settings import Settings
from chad_memory.stores import PostgresStore
from chad_memory.validation import MAX_JSON_DEPTH, check_json, json_text

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        {"k": "a \\u0000 written out, not a NUL"},
        nested(MAX_JSON_DEPTH),
        [[]] * 200,  # many brackets, shallow
        {"emoji": "\U0001f600", "big": 2**80},
        None,
    ],
)
def test_json_text_accepts_what_check_json_accepts(value: object) -> None:
    check_json(value)
    assert isinstance(json_text(value), str)


@pytest.mark.parametrize(
    "value",
    [
        {"k": "nul \x00 here"},
        ["lone \ud800 surrogate"],
        {"x": math.nan},
        [math.inf],
        nested(MAX_JSON_DEPTH + 2),
        {"bad\x00key": 1},
    ],
)
def test_json_text_refuses_what_check_json_refuses(value: object) -> None:
    with pytest.raises(InvalidInputError):
        check_json(value)
    with pytest.raises(InvalidInputError):
        json_text(value)


def _request(*spans: tuple[str, str, str, int]) -> ExportTraceServiceRequest:
    """Spans (id, parent id, name, start in ms) of one trace."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for span_id, parent, name, start_ms in spans:
        span = scope.spans.add()
        span.trace_id = TRACE
        span.span_id = bytes.fromhex(span_id)
        if parent:
            span.parent_span_id = bytes.fromhex(parent)
        span.name = name
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + start_ms * 1_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + 5_000_000
    return request


async def test_continued_trace_is_reordered_and_relinked(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    traces, runs = TraceStore(session_factory), PostgresStore(session_factory)
    a, b, c, root = "00000000000000a1", "00000000000000b2", "00000000000000c3", "0000000000000f00"
    # Two grandchildren first, then their parent, then the root that started before all.
    first = await export_traces(traces, _request((a, b, "a", 30), (c, b, "c", 20)), actor="al")
    assert (first.stored, first.rejected_spans) == (2, 0)
    await export_traces(traces, _request((b, root, "b", 10)), actor="al")
    again = await export_traces(
        traces, _request((root, "", "root", 0), (a, b, "a", 30)), actor="al"
    )
    assert (again.stored, again.duplicates) == (1, 1)

    [run] = (await runs.list_runs()).items
    assert (run.name, run.status, run.trace_id) == ("root", "succeeded", TRACE.hex())
    steps = await runs.get_steps(run.id)
    assert [(s.step_index, s.name) for s in steps] == [(0, "root"), (1, "b"), (2, "c"), (3, "a")]
    by_name = {s.name: s for s in steps}
    assert by_name["root"].parent_step_id is None
    assert by_name["b"].parent_step_id == by_name["root"].id
    assert by_name["c"].parent_step_id == by_name["b"].id
    assert by_name["a"].parent_step_id == by_name["b"].id


async def test_database_down_is_503_with_retry_after() -> None:
    dead = create_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none")
    app = create_app(engine=dead, settings=Settings(auth_mode="trusted_header"))
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            answer = await c.post(
                "/v1/traces",
                content=_request(("00000000000000a1", "", "x", 0)).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf", "X-Actor-ID": "alice"},
            )
        assert answer.status_code == 503
        assert answer.headers["Retry-After"]
    finally:
        await dead.dispose()
