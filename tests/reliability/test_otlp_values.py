"""OTLP attribute values read as what their columns hold (issue 22, classes 1, 2, 3, 10).

Every body is a real ExportTraceServiceRequest (protobuf, as the SDK's exporter sends
it) posted to the real app. Each export holds a good root span and one LLM span carrying
the bad value: the answer is 200 with a partial success that refuses the bad span and
names the attribute, and the root is stored. Before the fix these were 500s (an
unhashable membership test, int() refusing superscript digits or 5,000 digits, a
RecursionError from the JSON parser) or silent zeros (counts sent as text or doubles).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from apps.core_api.middleware import OtlpStatusMiddleware
from chad_memory.otlp import map_request
from tests.api.conftest import Api, api

__all__ = ["api"]

PROTOBUF = {"Content-Type": "application/x-protobuf"}
DEEP = 1_500  # past the JSON parser's recursion limit (about 1,000 levels)


def value(v: Any) -> AnyValue:
    """An AnyValue of the kind Python's type names: lists are arrays, dicts kvlists."""
    out = AnyValue()
    if isinstance(v, bool):
        out.bool_value = v
    elif isinstance(v, int):
        out.int_value = v
    elif isinstance(v, float):
        out.double_value = v
    elif isinstance(v, str):
        out.string_value = v
    elif isinstance(v, list):
        out.array_value.values.extend(value(i) for i in v)
    else:
        for key, item in v.items():
            out.kvlist_value.values.add(key=key).value.CopyFrom(value(item))
    return out


def _span(request: ExportTraceServiceRequest, trace: bytes, name: str, parent: bytes) -> Span:
    span = request.resource_spans[0].scope_spans[0].spans.add()
    span.trace_id = trace
    span.span_id = uuid.uuid4().bytes[:8]
    span.parent_span_id = parent
    span.name = name
    span.start_time_unix_nano = 1_700_000_000_000_000_000
    span.end_time_unix_nano = 1_700_000_001_000_000_000
    return span


def export(
    attributes: dict[str, Any],
    events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    resource: dict[str, Any] | None = None,
) -> tuple[ExportTraceServiceRequest, str]:
    """A root span and an LLM span (`chat`, unless attributes say) carrying `attributes`."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, item in (resource or {"service.name": "agent"}).items():
        resource_spans.resource.attributes.add(key=key).value.CopyFrom(value(item))
    resource_spans.scope_spans.add()
    trace = uuid.uuid4().bytes
    root = _span(request, trace, "root", b"")
    llm = _span(request, trace, "llm", root.span_id)
    for key, item in {"gen_ai.operation.name": "chat", **attributes}.items():
        llm.attributes.add(key=key).value.CopyFrom(value(item))
    for name, event_attributes in events:
        event = llm.events.add(name=name, time_unix_nano=1_700_000_000_500_000_000)
        for key, item in event_attributes.items():
            event.attributes.add(key=key).value.CopyFrom(value(item))
    return request, trace.hex()


async def send(api: Api, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
    answer = await api.client.post(
        "/v1/traces", content=request.SerializeToString(), headers={**PROTOBUF, **api.alice}
    )
    assert answer.status_code == 200, answer.content[:300]
    assert answer.headers["content-type"] == "application/x-protobuf"
    return ExportTraceServiceResponse.FromString(answer.content)


async def stored(api: Api, trace: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(step names, LLM calls) of the trace's run."""
    runs = (await api.client.get("/runs", params={"trace_id": trace}, headers=api.alice)).json()
    [run] = runs["items"]
    steps = (await api.client.get(f"/runs/{run['id']}/steps", headers=api.alice)).json()
    calls = (await api.client.get(f"/runs/{run['id']}/llm-calls", headers=api.alice)).json()
    return [s["name"] for s in steps], calls


def assert_refused(request: ExportTraceServiceRequest, *said: str) -> None:
    """The library refuses the LLM span alone, saying why (HTTP tests below send these)."""
    mapped = map_request(request)
    assert mapped.rejected == 1, mapped.errors
    for words in said:
        assert words in mapped.error_message
    [spans] = mapped.traces.values()
    assert [s.step.name for s in spans] == ["root"]


async def assert_refused_over_http(api: Api, *requests: ExportTraceServiceRequest) -> None:
    """Over HTTP, in one export: 200 (protobuf), each bad span refused, each root stored."""
    combined = ExportTraceServiceRequest()
    for request in requests:
        combined.resource_spans.extend(request.resource_spans)
    response = await send(api, combined)
    assert response.partial_success.rejected_spans == len(requests), response
    for request in requests:
        trace = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
        assert await stored(api, trace) == (["root"], [])


# Class 1 -----------------------------------------------------------------------------

TEXT_KEYS = [
    "gen_ai.operation.name",
    "openinference.span.kind",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.conversation.id",
    "user.id",
]


@pytest.mark.parametrize("shape", [["chat", "x"], {"a": "chat"}], ids=["array", "kvlist"])
@pytest.mark.parametrize("key", TEXT_KEYS)
def test_an_array_or_kvlist_where_text_is_read_refuses_the_span(key: str, shape: Any) -> None:
    assert_refused(_text_case(key, shape), f"attribute {key}", "must be text")


def _text_case(key: str, shape: Any) -> ExportTraceServiceRequest:
    attributes = {key: shape}
    if key == "openinference.span.kind":
        attributes = {"gen_ai.operation.name": "", key: shape}  # the first key absent
    return export(attributes)[0]


async def test_text_attributes_over_http(api: Api) -> None:
    await assert_refused_over_http(
        api, *(_text_case(key, shape) for key in TEXT_KEYS for shape in (["a"], {"a": "b"}))
    )


async def test_text_read_from_the_resource_follows_the_same_rule(api: Api) -> None:
    request, trace = export({}, resource={"session.id": ["a"], "service.name": "agent"})
    response = await send(api, request)
    assert response.partial_success.rejected_spans == 2  # both spans carry the resource
    assert "attribute session.id" in response.partial_success.error_message
    # service.name is only the agent's label: an array keeps the default, as sent in metadata
    request, trace = export({}, resource={"service.name": ["a", "b"]})
    assert not (await send(api, request)).HasField("partial_success")
    runs = (await api.client.get("/runs", params={"trace_id": trace}, headers=api.alice)).json()
    [run] = runs["items"]
    assert run["agent"] is None
    assert run["metadata"]["otel"]["resource"] == {"service.name": ["a", "b"]}


async def test_an_unexpected_error_on_otlp_is_a_status_in_the_request_encoding() -> None:
    """Whatever fails inside, an exporter reads a google.rpc.Status, never a JSON body."""

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    app = FastAPI()
    app.router.routes.clear()
    wrapped = OtlpStatusMiddleware(broken, paths=frozenset({"/v1/traces"}))
    transport = httpx.ASGITransport(app=wrapped, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post("/v1/traces", content=b"", headers=PROTOBUF)
        as_json = await client.post(
            "/v1/traces", content=b"{}", headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/x-protobuf"
    assert Status.FromString(answer.content).code == 13  # INTERNAL
    assert as_json.status_code == 500
    assert as_json.json() == {"code": 13, "message": "internal error"}


# Classes 2 and 10 ----------------------------------------------------------------------

COUNT_KEYS = [
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.total_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
]
NOT_COUNTS = {
    "superscript": "\u00b2",  # str.isdigit() says yes, int() says no
    "arabic_digits": "\u0661\u0662",  # int() reads these; they are not ASCII digits
    "five_thousand_digits": "9" * 5_000,
    "text": "abc",
    "fraction": 12.5,
    "fraction_text": "12.5",
    "boolean": True,
    "array": [1],
}


@pytest.mark.parametrize("bad", NOT_COUNTS.values(), ids=NOT_COUNTS.keys())
@pytest.mark.parametrize("key", COUNT_KEYS)
def test_a_count_that_is_not_a_whole_number_refuses_the_span(key: str, bad: Any) -> None:
    request, _ = export({"gen_ai.request.model": "m", key: bad})
    assert_refused(request, f"attribute {key}", "whole number")


NEGATIVE = {"int": -10, "text": "-10", "double": -10.0}


@pytest.mark.parametrize("negative", NEGATIVE.values(), ids=NEGATIVE.keys())
def test_a_negative_count_is_refused_in_every_encoding(negative: Any) -> None:
    request, _ = export({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": negative})
    assert_refused(request, "prompt_tokens")


async def test_numbers_over_http(api: Api) -> None:
    bad = [*NOT_COUNTS.values(), *NEGATIVE.values()]
    await assert_refused_over_http(
        api,
        *(export({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": b})[0] for b in bad),
        export({"gen_ai.prompt.99999999999.role": "user"})[0],
        export({"gen_ai.usage.cost": "\u00b2"})[0],
    )


async def test_whole_numbers_in_every_encoding_are_stored_as_sent(api: Api) -> None:
    request, trace = export(
        {
            "gen_ai.request.model": "m",
            "gen_ai.usage.input_tokens": "12",  # OTLP/JSON's int64 is text
            "gen_ai.usage.output_tokens": 3.0,
            "gen_ai.usage.total_tokens": 15,
            "gen_ai.usage.cost": "0.00036",
        }
    )
    assert not (await send(api, request)).HasField("partial_success")
    _, [call] = await stored(api, trace)
    assert (call["prompt_tokens"], call["completion_tokens"], call["total_tokens"]) == (12, 3, 15)
    assert call["cost_usd"] == "0.00036"


@pytest.mark.parametrize("bad", ["\u00b2", "abc", "1,5", [1], True], ids=str)
def test_a_cost_that_is_not_a_decimal_refuses_the_span(bad: Any) -> None:
    """Before, text that was not a decimal was dropped and the call priced from the table."""
    request, _ = export({"gen_ai.request.model": "m", "gen_ai.usage.cost": bad})
    assert_refused(request, "attribute gen_ai.usage.cost")


@pytest.mark.parametrize("index", ["9" * 5_000, "1234567890"], ids=["5000_digits", "10_digits"])
def test_a_flattened_message_index_past_nine_digits_refuses_the_span(index: str) -> None:
    request, _ = export({f"gen_ai.prompt.{index}.role": "user"})
    assert_refused(request, "message index")


async def test_flattened_indexes_are_ascii_digits(api: Api) -> None:
    """`\\d` also matches other scripts' digits; such a key is an ordinary attribute."""
    key = "gen_ai.prompt.\u0661.role"
    request, trace = export({key: "user", "gen_ai.prompt.0.content": "hi"})
    assert not (await send(api, request)).HasField("partial_success")
    runs = (await api.client.get("/runs", params={"trace_id": trace}, headers=api.alice)).json()
    steps = (
        await api.client.get(f"/runs/{runs['items'][0]['id']}/steps", headers=api.alice)
    ).json()
    assert steps[1]["input"] == [{"content": "hi"}]
    assert steps[1]["metadata"]["attributes"][key] == "user"


# Class 3 -------------------------------------------------------------------------------


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


DEEP_JSON = {
    "input_messages": ({"gen_ai.input.messages": deep(DEEP)}, []),
    "output_messages": ({"gen_ai.output.messages": deep(DEEP)}, []),
    "input_value": ({"input.value": deep(DEEP), "input.mime_type": "application/json"}, []),
    "invocation": ({"llm.invocation_parameters": deep(DEEP)}, []),
    "prompt_event": ({}, [("gen_ai.content.prompt", {"gen_ai.prompt": deep(DEEP)})]),
    "message_event": ({}, [("gen_ai.user.message", {"content": deep(DEEP)})]),
}


@pytest.mark.parametrize(("attributes", "events"), DEEP_JSON.values(), ids=DEEP_JSON.keys())
def test_json_in_an_attribute_past_the_parsers_depth_refuses_the_span(
    attributes: dict[str, Any], events: list[tuple[str, dict[str, Any]]]
) -> None:
    request, _ = export({"gen_ai.request.model": "m", **attributes}, events)
    assert_refused(request, "nested deeper than 64 levels")


async def test_deep_json_over_http(api: Api) -> None:
    await assert_refused_over_http(
        api, *(export({"gen_ai.request.model": "m", **a}, e)[0] for a, e in DEEP_JSON.values())
    )


@pytest.mark.parametrize("levels", [65, DEEP, 3_000])
@pytest.mark.parametrize("route", ["/runs", "/threads"])
async def test_a_metadata_filter_nested_past_the_limit_is_422(
    api: Api, route: str, levels: int
) -> None:
    wanted = '{"a":' * levels + "1" + "}" * levels
    answer = await api.client.get(route, params={"metadata": wanted}, headers=api.alice)
    assert answer.status_code == 422, answer.text[:300]
    assert "nested deeper than 64 levels" in json.dumps(answer.json())


# Class 11 ------------------------------------------------------------------------------


async def test_a_span_priced_past_the_cost_column_is_refused_alone(api: Api) -> None:
    """A user price times a huge token count is at least 1e10 USD: before, the whole
    export was a 422 and its valid spans were lost."""
    price = {
        "model_pattern": "pricey",
        "starts_at": "2020-01-01T00:00:00Z",
        "input_mtok": "9999999999",
        "output_mtok": "0",
    }
    assert (await api.client.put("/prices", json=price, headers=api.alice)).status_code == 200
    huge = {"gen_ai.request.model": "pricey", "gen_ai.usage.input_tokens": 2_000_000_000}
    request, trace = export(huge)  # a root and the overpriced LLM span
    good = request.resource_spans[0].scope_spans[0].spans.add()
    good.CopyFrom(request.resource_spans[0].scope_spans[0].spans[1])
    good.span_id = uuid.uuid4().bytes[:8]
    good.name = "cheap"
    del good.attributes[:]
    for key, item in {"gen_ai.operation.name": "chat", "gen_ai.request.model": "cheap"}.items():
        good.attributes.add(key=key).value.CopyFrom(value(item))
    # A second trace holding only an overpriced span: no run is left for it.
    alone, alone_trace = export(huge)
    del alone.resource_spans[0].scope_spans[0].spans[0]  # its root
    request.resource_spans.extend(alone.resource_spans)

    response = await send(api, request)
    assert response.partial_success.rejected_spans == 2
    assert "does not fit" in response.partial_success.error_message
    names, calls = await stored(api, trace)
    assert sorted(names) == ["cheap", "root"]
    assert [c["model"] for c in calls] == ["cheap"]
    found = await api.client.get("/runs", params={"trace_id": alone_trace}, headers=api.alice)
    assert found.json()["items"] == []
