"""OTLP bodies as a whole: gzip members and the work one export may cause (issue 22,
classes 9 and 12).

Bodies are real ExportTraceServiceRequest messages (protobuf or OTLP/JSON), posted to the
real app in-process.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from typing import Any

from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.api.conftest import Api, api

__all__ = ["api"]

PROTOBUF = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
JSON = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


def spans(trace: bytes, count: int, first: int = 0) -> ExportTraceServiceRequest:
    """One resource with `count` root-less spans of one trace, named s<first>, s<first+1>..."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(first, first + count):
        span = scope.spans.add(name=f"s{i}", trace_id=trace, span_id=(i + 1).to_bytes(8, "big"))
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + i
        span.end_time_unix_nano = span.start_time_unix_nano + 1_000
    return request


def as_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    document: dict[str, Any] = json_format.MessageToDict(request)
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId"):
                    span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


async def step_names(api: Api, trace: bytes) -> list[str]:
    found = await api.client.get("/runs", params={"trace_id": trace.hex()}, headers=api.alice)
    [run] = found.json()["items"]
    steps = await api.client.get(f"/runs/{run['id']}/steps", headers=api.alice)
    return sorted(s["name"] for s in steps.json())


# Class 9 -------------------------------------------------------------------------------


async def test_every_gzip_member_is_read(api: Api) -> None:
    """`cat a.gz b.gz` is one legal gzip stream: both halves are stored (before: only a)."""
    trace = uuid.uuid4().bytes
    first, second = spans(trace, 2).SerializeToString(), spans(trace, 3, 2).SerializeToString()
    # Protobuf messages concatenate into one message with both lists of resource spans.
    sent = gzip.compress(first) + gzip.compress(second)
    answer = await api.client.post("/v1/traces", content=sent, headers={**PROTOBUF, **api.alice})
    assert answer.status_code == 200, answer.content
    assert not ExportTraceServiceResponse.FromString(answer.content).HasField("partial_success")
    assert await step_names(api, trace) == ["s0", "s1", "s2", "s3", "s4"]

    # OTLP/JSON split across three members (one of them empty) is one document.
    trace = uuid.uuid4().bytes
    document = as_otlp_json(spans(trace, 2))
    half = len(document) // 2
    sent = gzip.compress(document[:half]) + gzip.compress(b"") + gzip.compress(document[half:])
    answer = await api.client.post("/v1/traces", content=sent, headers={**JSON, **api.alice})
    assert answer.status_code == 200, answer.content
    assert await step_names(api, trace) == ["s0", "s1"]


async def test_bytes_after_a_gzip_member_are_refused_not_ignored(api: Api) -> None:
    trace = uuid.uuid4().bytes
    member = gzip.compress(spans(trace, 1).SerializeToString())
    for tail in (b"garbage", b"\x00" * 8, gzip.compress(b"x")[:10]):
        answer = await api.client.post(
            "/v1/traces", content=member + tail, headers={**PROTOBUF, **api.alice}
        )
        assert answer.status_code == 400, (tail, answer.content)
        assert "gzip" in Status.FromString(answer.content).message
    found = await api.client.get("/runs", params={"trace_id": trace.hex()}, headers=api.alice)
    assert found.json()["items"] == []  # nothing of a refused body is stored


async def test_the_size_limit_holds_over_all_members_together(api: Api) -> None:
    """Two members each under MAX_BODY_BYTES once inflated, together over: 413."""
    limit = 10 * 1024 * 1024
    member = gzip.compress(b"\x00" * (limit // 2 + 1))
    answer = await api.client.post(
        "/v1/traces", content=member + member, headers={**PROTOBUF, **api.alice}
    )
    assert answer.status_code == 413
    assert str(limit) in Status.FromString(answer.content).message
