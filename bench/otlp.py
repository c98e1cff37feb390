"""OTLP ingest: spans through the real exporter into `chad-memory serve`, beside save_steps.

Usage: python -m bench.otlp [--spans 100000] [--batch 512] [--trace-size 16]

Each pass also exports the same spans over OTLP/gRPC (`serve --otlp-grpc-port`, the
SDK's gRPC exporter) into a database of their own: goal gRPC / HTTP >= 1.0.

The spans are made by the OpenTelemetry SDK before the clock starts (an agent trace of
`--trace-size` spans: a root, LLM spans with GenAI attributes and ~500 bytes of messages,
tool spans with OpenInference input/output), then exported in batches of `--batch` with
`OTLPSpanExporter.export`, one batch after another as the BatchSpanProcessor sends them,
to a `chad-memory serve` process on a fresh database of the bench server. The figure is
spans stored per second of export wall time, which includes the exporter's protobuf
encoding, HTTP, decoding, mapping and the database.

The baseline, measured in the same run on the same server: `PostgresStore.save_steps` of
the same number of steps with the same ~500-byte payloads, in batches of `--batch`
(StepCreate built inside the clock, as in bench/ingest.py). Goal: >= 0.50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    create_database,
    drop_database,
    free_port,
    load_line,
    say,
    sqlalchemy_url,
    table,
)
from bench.ingest import payload

CLI = Path(sys.executable).parent / "chad-memory"


def make_spans(total: int, trace_size: int, llm_extra: dict[str, Any] | None = None) -> list[Any]:
    """Agent traces of `trace_size` spans; `llm_extra` is added to every LLM span."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    collected = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer("bench.otlp")
    made = 0
    while made < total:
        with tracer.start_as_current_span(
            "invoke_agent bench",
            attributes={"gen_ai.operation.name": "invoke_agent", "session.id": f"s-{made % 97}"},
        ):
            for i in range(min(trace_size, total - made) - 1):
                body = json.dumps(payload(made + i))
                if i % 3 == 0:
                    attributes: dict[str, Any] = {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.usage.input_tokens": 120 + i,
                        "gen_ai.usage.output_tokens": 30,
                        "gen_ai.input.messages": json.dumps(
                            [{"role": "user", "parts": [{"type": "text", "content": body}]}]
                        ),
                        "gen_ai.output.messages": json.dumps(
                            [{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]
                        ),
                        **(llm_extra or {}),
                    }
                else:
                    attributes = {
                        "openinference.span.kind": "TOOL",
                        "tool.name": "search",
                        "input.value": body,
                        "input.mime_type": "application/json",
                        "output.value": "done",
                    }
                with tracer.start_as_current_span(f"step {i}", attributes=attributes):
                    pass
        made += min(trace_size, total - made)
    spans = list(collected.get_finished_spans())
    provider.shutdown()
    return spans[:total]


def _exporter(protocol: str, base: str, grpc_port: int, secret: str) -> Any:
    """The SDK's own span exporter for `protocol` ("http" or "grpc")."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(
            endpoint=f"127.0.0.1:{grpc_port}",
            insecure=True,
            headers=(("authorization", f"Bearer {secret}"),),
            timeout=60,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=f"{base}/v1/traces", headers={"Authorization": f"Bearer {secret}"}, timeout=60
    )


def exports(
    database_url: str, secret: str, spans: list[Any], batch: int, protocol: str = "http"
) -> float:
    """Spans/s exported to a `chad-memory serve` started here on `database_url`, over
    OTLP/HTTP or OTLP/gRPC (`serve --otlp-grpc-port`)."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port)]
        + (["--otlp-grpc-port", str(grpc_port)] if protocol == "grpc" else []),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not start")
            time.sleep(0.2)
        exporter = _exporter(protocol, base, grpc_port, secret)
        t0 = time.perf_counter()
        for start in range(0, len(spans), batch):
            if exporter.export(spans[start : start + batch]) != SpanExportResult.SUCCESS:
                raise RuntimeError(f"export of the batch at {start} failed")
        elapsed = time.perf_counter() - t0
        exporter.shutdown()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return len(spans) / elapsed


async def export_rate(
    db: str, spans: list[Any], batch: int, protocol: str = "http"
) -> tuple[float, int]:
    """(spans/s through the exporter into a serve process, steps stored)."""
    from sqlalchemy import text

    from chad_memory import ApiKeyStore
    from chad_memory.database import create_engine, get_session_factory

    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    secret = (await ApiKeyStore(get_session_factory(engine)).create_key("alice")).secret
    rate = await asyncio.to_thread(exports, sqlalchemy_url(db), secret, spans, batch, protocol)
    async with engine.connect() as conn:
        stored = int(await conn.scalar(text("SELECT count(*) FROM steps")) or 0)
    await engine.dispose()
    return rate, stored


async def save_steps_rate(db: str, n: int, batch: int) -> float:
    from chad_memory import PostgresStore, RunCreate, StepCreate
    from chad_memory.database import create_engine, get_session_factory

    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    store = PostgresStore(get_session_factory(engine))
    run = await store.save_run(RunCreate(actor="alice", name="baseline"))
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        await store.save_steps(
            [
                StepCreate(run_id=run.id, step_index=i, name="tool", type="tool", input=payload(i))
                for i in range(start, min(n, start + batch))
            ]
        )
    rate = n / (time.perf_counter() - t0)
    await engine.dispose()
    return rate


async def breakdown(spans: list[Any], batch: int) -> list[list[Any]]:
    """Where a span's time goes, in this process, beside save_steps' time per row: the
    exporter's encoding, decoding + mapping (chad_memory.otlp), and TraceStore.save_spans."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.otlp import TraceStore, map_request
    from chad_memory.otlp.wire import PROTOBUF, decode_request

    db = await create_database("bench_otlp_parts")
    try:
        n = len(spans)
        t0 = time.perf_counter()
        bodies = [
            encode_spans(spans[i : i + batch]).SerializeToString() for i in range(0, n, batch)
        ]
        t1 = time.perf_counter()
        mapped = [map_request(decode_request(body, PROTOBUF, batch)) for body in bodies]
        t2 = time.perf_counter()
        engine = create_engine(sqlalchemy_url(db), pool_size=2)
        store = TraceStore(get_session_factory(engine))
        t3 = time.perf_counter()
        for item in mapped:
            await store.save_spans(item.traces, actor="alice")
        t4 = time.perf_counter()
        await engine.dispose()
        per_row = 1e6 / await save_steps_rate(db, n, batch)
    finally:
        await drop_database(db)
    parts = [
        ("exporter: encode_spans + SerializeToString", t1 - t0),
        ("server: decode + map_request", t2 - t1),
        ("server: TraceStore.save_spans", t4 - t3),
    ]
    rows = [[name, seconds / n * 1e6, seconds / n * 1e6 / per_row] for name, seconds in parts]
    rows.append(["save_steps (baseline), per row", per_row, 1.0])
    return rows


async def main(total: int, batch: int, trace_size: int, repeats: int) -> None:
    say(load_line())
    say(f"making {total:,} spans with the SDK (not timed)")
    spans = make_spans(total, trace_size)
    rows = []
    ratios, grpc_ratios = [], []
    for attempt in range(repeats):
        db, grpc_db = await create_database("bench_otlp"), await create_database("bench_otlp_g")
        try:
            baseline = await save_steps_rate(db, total, batch)
            say(f"pass {attempt + 1}: save_steps {baseline:,.0f} rows/s")
            rate, stored = await export_rate(db, spans, batch)
            say(f"pass {attempt + 1}: OTLP/HTTP {rate:,.0f} spans/s ({stored - total:,} steps)")
            if stored - total != total:
                raise RuntimeError(f"expected {total} spans stored, found {stored - total}")
            grpc_rate, grpc_stored = await export_rate(grpc_db, spans, batch, "grpc")
            say(f"pass {attempt + 1}: OTLP/gRPC {grpc_rate:,.0f} spans/s")
            if grpc_stored != total:
                raise RuntimeError(f"expected {total} spans stored, found {grpc_stored}")
        finally:
            await drop_database(db)
            await drop_database(grpc_db)
        ratios.append(rate / baseline)
        grpc_ratios.append(grpc_rate / rate)
        rows.append(
            [
                attempt + 1,
                round(rate),
                round(grpc_rate),
                round(baseline),
                rate / baseline,
                grpc_rate / rate,
            ]
        )
    headers = ["pass", "OTLP/HTTP spans/s", "OTLP/gRPC spans/s", "save_steps rows/s"]
    print(table([*headers, "HTTP / save_steps", "gRPC / HTTP"], rows))
    print(
        f"median ratio {statistics.median(ratios):.2f} (goal >= 0.50); gRPC / HTTP "
        f"{statistics.median(grpc_ratios):.2f} (goal >= 1.0); {load_line()}"
    )
    parts = await breakdown(spans[: min(total, 20 * batch)], batch)
    print(table(["part (in-process)", "us per span", "x save_steps per row"], parts))
    print(load_line())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--trace-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.spans, args.batch, args.trace_size, args.repeats))
