"""What pricing costs OTLP ingest: TraceStore.save_spans of LLM spans priced from the table
beside the same spans carrying their own cost.

Usage: python -m bench.otlp_pricing [--spans 10240] [--batch 512] [--repeats 3]

bench/otlp.py's agent traces (16 spans; every third an OpenAI gpt-4o chat span with token
counts), made by the OpenTelemetry SDK, encoded, decoded and mapped before the clock
starts. Two sets: "priced" as they are (each LLM call priced by
chad_memory.prices.price_new_calls: one SELECT per export for the user prices, then
genai-prices' calc_price per call) and "reported", whose LLM spans also carry
`gen_ai.usage.cost` (kept as sent: no lookup, no calculation). Their exports alternate on
one fresh database per pass, in this process; the figure is the time of save_spans per
span, priced / reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench.common import create_database, drop_database, load_line, say, sqlalchemy_url, table
from bench.otlp import make_spans


def mapped_exports(spans: list[Any], batch: int) -> list[Any]:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from chad_memory.otlp import map_request

    return [map_request(encode_spans(spans[i : i + batch])) for i in range(0, len(spans), batch)]


async def one_pass(priced: list[Any], reported: list[Any]) -> tuple[float, float, int]:
    """Seconds in save_spans for each set, exports alternating; and the calls priced."""
    from sqlalchemy import text

    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.otlp import TraceStore

    db = await create_database("bench_otlp_pricing")
    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    try:
        store = TraceStore(get_session_factory(engine))
        spent = {"priced": 0.0, "reported": 0.0}
        for a, b in zip(priced, reported, strict=True):
            for kind, item in (("priced", a), ("reported", b)):
                t0 = time.perf_counter()
                await store.save_spans(item.traces, actor="alice")
                spent[kind] += time.perf_counter() - t0
        async with engine.connect() as conn:
            counted = await conn.execute(
                text("SELECT cost_source, count(*) FROM llm_calls GROUP BY 1")
            )
            sources: dict[str, int] = {str(row[0]): int(row[1]) for row in counted}
        if set(sources) != {"table", "client"} or sources["table"] != sources["client"]:
            raise RuntimeError(f"expected as many table as client costs, found {sources}")
        return spent["priced"], spent["reported"], sources["table"]
    finally:
        await engine.dispose()
        await drop_database(db)


async def main(total: int, batch: int, repeats: int) -> None:
    say(load_line())
    say(f"making 2 x {total:,} spans with the SDK (not timed)")
    priced = mapped_exports(make_spans(total, 16), batch)
    reported = mapped_exports(make_spans(total, 16, {"gen_ai.usage.cost": 0.000425}), batch)
    rows = []
    ratios = []
    for attempt in range(repeats):
        p, r, calls = await one_pass(priced, reported)
        ratios.append(p / r)
        extra_us = (p - r) / calls * 1e6
        rows.append(
            [attempt + 1, p / total * 1e6, r / total * 1e6, p / r, calls, round(extra_us, 1)]
        )
    header = ["pass", "priced us/span", "reported us/span", "ratio", "LLM calls", "us per call"]
    print(table(header, rows))
    print(f"median ratio {statistics.median(ratios):.2f}; {load_line()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_240)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.spans, args.batch, args.repeats))
