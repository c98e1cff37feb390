"""POST /v1/traces in-process (the real app over ASGI, a real database): encodings,
status codes, partial success and the conventions' mapping, with bodies built by hand
per the OTLP specification. The real SDK exporter is in test_otlp_export.py."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.api.conftest import Api

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT = "eee19b7ec3c1b174"
CHILD = "eee19b7ec3c1b173"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # int64 as a decimal string
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def span(span_id: str, name: str, parent: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "traceId": TRACE,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": 1,  # enums are integers in OTLP/JSON
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001500000000",
        **extra,
    }


def body(*spans: dict[str, Any], resource: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": resource or [attr("service.name", "shop-agent")]},
                "scopeSpans": [{"scope": {"name": "tests", "version": "1"}, "spans": list(spans)}],
                "someFutureField": {"ignored": True},
            }
        ]
    }


async def _runs(api: Api, **params: str) -> list[dict[str, Any]]:
    answer = await api.client.get("/runs", params=params, headers=api.alice)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_otlp_json_body_per_spec(api: Api) -> None:
    llm = span(
        CHILD,
        "chat gpt-4o",
        ROOT,
        attributes=[
            attr("gen_ai.operation.name", "chat"),
            attr("gen_ai.system", "openai"),  # the deprecated name, still in the field
            attr("gen_ai.request.model", "gpt-4o"),
            attr("gen_ai.request.temperature", 0.2),
            attr("gen_ai.usage.prompt_tokens", 12),
            attr("gen_ai.usage.completion_tokens", 3),
        ],
        # The older event form of the messages.
        events=[
            {
                "timeUnixNano": "1700000000100000000",
                "name": "gen_ai.user.message",
                "attributes": [attr("content", "What is 2+2?")],
            },
            {
                "timeUnixNano": "1700000001400000000",
                "name": "gen_ai.choice",
                "attributes": [attr("index", 0), attr("message", '{"content": "4"}')],
            },
            {"timeUnixNano": "1700000001000000000", "name": "retry", "attributes": []},
        ],
    )
    root = span(ROOT, "agent run", attributes=[attr("session.id", "conv-7")])
    sent = json.dumps(body(llm, root)).encode()
    answer = await api.client.post("/v1/traces", content=sent, headers={**JSON, **api.alice})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == {}  # full success: no partialSuccess

    [run] = await _runs(api, trace_id=TRACE)
    assert (run["name"], run["status"], run["agent"]) == ("agent run", "succeeded", "shop-agent")
    assert run["started_at"].startswith("2023-11-14T22:13:20")
    assert run["metadata"]["otel"]["conversation_id"] == "conv-7"
    assert [r["id"] for r in await _runs(api, conversation_id="conv-7")] == [run["id"]]
    assert await _runs(api, conversation_id="conv-other") == []

    steps = (await api.client.get(f"/runs/{run['id']}/steps", headers=api.alice)).json()
    assert [s["name"] for s in steps] == ["agent run", "chat gpt-4o"]
    root_step, llm_step = steps
    assert llm_step["parent_step_id"] == root_step["id"]
    assert llm_step["type"] == "chat"
    assert llm_step["duration_ms"] == 1500.0
    assert llm_step["input"] == [{"role": "user", "content": "What is 2+2?"}]
    assert llm_step["output"] == [{"index": 0, "message": {"content": "4"}}]
    meta = llm_step["metadata"]
    assert meta["otel"]["span_id"] == CHILD
    assert meta["otel"]["parent_span_id"] == ROOT
    assert meta["otel"]["start_time_unix_nano"] == "1700000000000000000"
    assert [e["name"] for e in meta["otel"]["events"]] == ["retry"]  # unread events kept
    assert meta["attributes"]["gen_ai.request.temperature"] == 0.2
    assert meta["resource"] == {"service.name": "shop-agent"}

    [call] = (await api.client.get(f"/runs/{run['id']}/llm-calls", headers=api.alice)).json()
    assert (call["provider"], call["model"]) == ("openai", "gpt-4o")
    assert (call["prompt_tokens"], call["completion_tokens"], call["total_tokens"]) == (12, 3, 15)
    assert call["step_id"] == llm_step["id"]
    assert call["latency_ms"] == 1500.0
    assert call["request"]["temperature"] == 0.2

    # The same export again stores nothing twice.
    again = await api.client.post("/v1/traces", content=sent, headers={**JSON, **api.alice})
    assert again.status_code == 200
    assert len((await api.client.get(f"/runs/{run['id']}/steps", headers=api.alice)).json()) == 2
    # bob's export of the same trace id is bob's run; alice's is untouched.
    bobs = await api.client.post("/v1/traces", content=sent, headers={**JSON, **api.bob})
    assert bobs.status_code == 200
    assert len(await _runs(api, trace_id=TRACE)) == 1


async def test_partial_success_keeps_the_good_spans(api: Api) -> None:
    good = span(ROOT, "fine")
    nul = span(CHILD, "bad\u0000name", ROOT)
    zero_id = span("0000000000000000", "zero id", ROOT)
    backwards = span("00000000000000bb", "backwards", ROOT, endTimeUnixNano="1")
    request = ExportTraceServiceRequest()
    document = body(good, nul, zero_id, backwards)
    # Sent as protobuf: OTLP/JSON's hex ids become the bytes protobuf's JSON reads as base64.
    for item in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId", "parentSpanId"):
            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()
    json_format.ParseDict(document, request, ignore_unknown_fields=True)
    # NaN is not JSON: that span is added through protobuf, as an SDK would send it.
    extra = request.resource_spans[0].scope_spans[0].spans.add()
    extra.trace_id = bytes.fromhex(TRACE)
    extra.span_id = bytes.fromhex("00000000000000aa")
    extra.parent_span_id = bytes.fromhex(ROOT)
    extra.name = "nan"
    extra.attributes.add(key="score").value.double_value = float("nan")

    answer = await api.client.post(
        "/v1/traces", content=request.SerializeToString(), headers={**PROTOBUF, **api.alice}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_spans == 4
    message = response.partial_success.error_message
    assert "NUL" in message
    assert "not all zero" in message
    assert "before start_time_unix_nano" in message
    assert "nan" in message.lower()
    [run] = await _runs(api, trace_id=TRACE)
    steps = (await api.client.get(f"/runs/{run['id']}/steps", headers=api.alice)).json()
    assert [s["name"] for s in steps] == ["fine"]


async def test_error_bodies_are_status_messages_in_the_request_encoding(api: Api) -> None:
    """OTLP/HTTP: every 4xx/5xx body is a google.rpc.Status (protobuf or JSON)."""
    c = api.client
    garbage = await c.post("/v1/traces", content=b"\xff\xff\xff", headers={**PROTOBUF, **api.alice})
    assert garbage.status_code == 400
    assert garbage.headers["content-type"] == "application/x-protobuf"
    status = Status.FromString(garbage.content)
    assert status.code == 3  # INVALID_ARGUMENT
    assert status.message

    as_json = await c.post("/v1/traces", content=b'["a"]', headers={**JSON, **api.alice})
    assert as_json.status_code == 400
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json()["code"] == 3
    assert isinstance(as_json.json()["message"], str)

    # Refused before the route runs (authentication, the body guard): same shape.
    anonymous = await c.post("/v1/traces", content=b"", headers=PROTOBUF)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert Status.FromString(anonymous.content).code == 16  # UNAUTHENTICATED
    oversized = await c.post(
        "/v1/traces", content=b"\x00" * (11 * 1024 * 1024), headers={**PROTOBUF, **api.alice}
    )
    assert oversized.status_code == 413
    assert "MAX_BODY_BYTES" in Status.FromString(oversized.content).message

    # Neither OTLP encoding: the usual {"detail": ...}.
    plain = await c.post(
        "/v1/traces", content=b"x", headers={"Content-Type": "text/plain", **api.alice}
    )
    assert plain.status_code == 415
    assert "detail" in plain.json()
    # Other routes keep {"detail": ...} whatever they are sent.
    other = await c.post("/runs", content=b"{", headers={**JSON, **api.alice})
    assert other.status_code == 422
    assert "detail" in other.json()


async def test_status_codes(api: Api) -> None:
    c = api.client
    proto = {**PROTOBUF, **api.alice}
    assert (await c.post("/v1/traces", content=b"\xff\xff\xff", headers=proto)).status_code == 400
    not_otlp = await c.post("/v1/traces", content=b'["a"]', headers={**JSON, **api.alice})
    assert not_otlp.status_code == 400
    bad_hex = json.dumps(body(span("zz", "x"))).encode()
    assert (
        await c.post("/v1/traces", content=bad_hex, headers={**JSON, **api.alice})
    ).status_code == 400
    plain = await c.post(
        "/v1/traces", content=b"x", headers={"Content-Type": "text/plain", **api.alice}
    )
    assert plain.status_code == 415
    assert (await c.post("/v1/traces", content=b"", headers=PROTOBUF)).status_code == 401
    bad_gzip = {**proto, "Content-Encoding": "gzip"}
    assert (await c.post("/v1/traces", content=b"not gzip", headers=bad_gzip)).status_code == 400
    # A small gzip body that inflates past MAX_BODY_BYTES: 413, not gigabytes in memory.
    bomb = gzip.compress(b"\x00" * (11 * 1024 * 1024))
    assert (await c.post("/v1/traces", content=bomb, headers=bad_gzip)).status_code == 413
    # An empty export is a valid one.
    empty = await c.post("/v1/traces", content=b"", headers=proto)
    assert empty.status_code == 200
    assert ExportTraceServiceResponse.FromString(empty.content) == ExportTraceServiceResponse()


async def test_gzip_child_before_parent_across_exports(api: Api) -> None:
    later = span(ROOT, "root", startTimeUnixNano="1700000000000000000")
    first = span(
        CHILD,
        "child",
        ROOT,
        startTimeUnixNano="1700000000200000000",
        status={"code": 2, "message": "boom"},
    )
    grandchild = span(
        "eee19b7ec3c1b172", "grandchild", CHILD, startTimeUnixNano="1700000000300000000"
    )
    headers = {**JSON, **api.alice, "Content-Encoding": "gzip"}
    for part in (body(grandchild), body(first), body(later)):
        sent = await api.client.post(
            "/v1/traces", content=gzip.compress(json.dumps(part).encode()), headers=headers
        )
        assert sent.status_code == 200, sent.text
    [run] = await _runs(api, trace_id=TRACE)
    assert run["status"] == "succeeded"  # the root's status decides; the child failed
    steps = (await api.client.get(f"/runs/{run['id']}/steps", headers=api.alice)).json()
    assert [(s["step_index"], s["name"]) for s in steps] == [
        (0, "root"),
        (1, "child"),
        (2, "grandchild"),
    ]
    root, child, grandchild_step = steps
    assert child["parent_step_id"] == root["id"]
    assert grandchild_step["parent_step_id"] == child["id"]
    assert (child["status"], child["error"]) == ("failed", "boom")
