"""POST /v1/logs in-process with OTLP/JSON and protobuf bodies built per the spec: records
without a span are kept on their run, records without a trace are refused in partial
success, status answers as for /v1/traces, and /v1/metrics is a 404 Status."""

from __future__ import annotations

import gzip
import json
from typing import Any

from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from tests.api.conftest import Api
from tests.otlp.test_otlp_http import JSON, PROTOBUF, ROOT, TRACE, _runs, attr, body, span


def logs(*records: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [attr("service.name", "shop-agent")]},
                "scopeLogs": [{"scope": {"name": "tests"}, "logRecords": list(records)}],
            }
        ]
    }


def record(event: str, span_id: str = "", trace_id: str = TRACE, **extra: Any) -> dict[str, Any]:
    found = {"timeUnixNano": "1700000000100000000", "eventName": event, **extra}
    if trace_id:
        found["traceId"] = trace_id
    if span_id:
        found["spanId"] = span_id
    return found


async def test_logs_attach_keep_and_refuse(api: Api) -> None:
    c, headers = api.client, {**JSON, **api.alice}
    user = record(
        "gen_ai.user.message",
        ROOT,
        body={"kvlistValue": {"values": [attr("content", "Where is my order?")]}},
    )
    choice = record(
        "gen_ai.choice",
        ROOT,
        body={"kvlistValue": {"values": [attr("index", 0), attr("finish_reason", "stop")]}},
    )
    plain = record("", "", severityText="INFO", body={"stringValue": "agent started"})
    orphan = record("gen_ai.user.message", "", trace_id="")
    sent = await c.post(
        "/v1/logs", content=json.dumps(logs(user, choice, plain, orphan)), headers=headers
    )
    assert sent.status_code == 200, sent.text
    answer = sent.json()
    assert answer["partialSuccess"]["rejectedLogRecords"] == "1"
    assert "no trace_id" in answer["partialSuccess"]["errorMessage"]
    # The span arrives after its content: the step takes what waited for it.
    spans = await c.post(
        "/v1/traces", content=json.dumps(body(span(ROOT, "root"))), headers=headers
    )
    assert spans.status_code == 200, spans.text
    [run] = await _runs(api, trace_id=TRACE)
    [step] = (await c.get(f"/runs/{run['id']}/steps", headers=api.alice)).json()
    assert step["input"] == [{"role": "user", "content": "Where is my order?"}]
    assert step["output"] == [{"index": 0, "finish_reason": "stop"}]
    full = (await c.get(f"/runs/{run['id']}", headers=api.alice)).json()
    assert full["request_payload"] == step["input"]
    assert full["result"] == step["output"]
    [kept] = full["metadata"]["otel"]["logs"]
    assert (kept["body"], kept["severity"]) == ("agent started", "INFO")
    assert run["agent"] == "shop-agent"
    # Later events of the span append to what earlier ones put there.
    second = record("gen_ai.user.message", ROOT, body={"stringValue": "Order 42"})
    again = await c.post(
        "/v1/logs",
        content=gzip.compress(json.dumps(logs(second)).encode()),
        headers={**headers, "Content-Encoding": "gzip"},
    )
    assert again.status_code == 200, again.text
    assert again.json() == {}
    [step] = (await c.get(f"/runs/{run['id']}/steps", headers=api.alice)).json()
    assert step["input"][-1] == {"role": "user", "content": "Order 42"}
    assert len(step["metadata"]["otel"]["logs"]) == 3
    # Bob's logs of the same trace id are his own run's.
    bob = await c.post("/v1/logs", content=json.dumps(logs(plain)), headers={**JSON, **api.bob})
    assert bob.status_code == 200
    assert [r["id"] for r in await _runs(api, trace_id=TRACE)] == [run["id"]]


async def test_logs_status_answers_and_metrics_404(api: Api) -> None:
    c = api.client
    proto = {**PROTOBUF, **api.alice}
    empty = await c.post("/v1/logs", content=b"", headers=proto)
    assert empty.status_code == 200
    assert ExportLogsServiceResponse.FromString(empty.content) == ExportLogsServiceResponse()
    request = ExportLogsServiceRequest()
    log = request.resource_logs.add().scope_logs.add().log_records.add()
    log.trace_id = bytes(16)  # all zero: invalid
    log.event_name = "gen_ai.choice"
    refused = await c.post("/v1/logs", content=request.SerializeToString(), headers=proto)
    assert refused.status_code == 200
    parsed = ExportLogsServiceResponse.FromString(refused.content)
    assert parsed.partial_success.rejected_log_records == 1
    bad = await c.post("/v1/logs", content=b"\xff\xff not protobuf", headers=proto)
    assert bad.status_code == 400
    assert Status.FromString(bad.content).code == 3  # INVALID_ARGUMENT
    nokey = await c.post("/v1/logs", content=b"", headers=PROTOBUF)
    assert nokey.status_code == 401
    assert Status.FromString(nokey.content).code == 16  # UNAUTHENTICATED
    text = await c.post(
        "/v1/logs", content=b"x", headers={"Content-Type": "text/plain", **api.alice}
    )
    assert text.status_code == 415
    metrics = await c.post("/v1/metrics", content=b"", headers=proto)
    assert metrics.status_code == 404
    assert Status.FromString(metrics.content).code == 5  # NOT_FOUND
    as_json = await c.post("/v1/metrics", content=b"{}", headers={**JSON, **api.alice})
    assert as_json.status_code == 404
    assert as_json.json()["code"] == 5
