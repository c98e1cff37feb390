"""The HTTP API in-process (httpx over ASGI, API-key auth), beside raw asyncpg.

Usage: python -m bench.http_api [--requests 20] [--runs 10000,1000000]

- `POST /runs/{id}/steps` with 1,000 steps (~370-byte JSON payloads) a request: p50/p95,
  beside `save_steps` of the same 1,000 steps and binary COPY of them;
- `GET /runs` for one actor owning 10k and 1M runs (bulk-loaded with COPY): the first
  page (with its default `total`, exact up to 10,000 matches), a deep cursor page (90%
  down) and the first page with `exact_total=true`, beside the same SQL sent with plain
  asyncpg; EXPLAIN of the page and of both counts.

Requests are sequential on one client (no concurrency): latency, not throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.common import (
    create_database,
    drop_database,
    load_line,
    percentile,
    raw_connection,
    say,
    sqlalchemy_url,
    table,
    timed_passes,
)
from bench.ingest import copy_steps, payload

PAGE_SQL = (
    "SELECT id, actor, name, status, created_at FROM runs WHERE actor = $1 {cursor}"
    "ORDER BY created_at DESC, id DESC LIMIT 51"
)
CAPPED_COUNT_SQL = "SELECT count(*) FROM (SELECT id FROM runs WHERE actor = $1 LIMIT 10001) s"
EXACT_COUNT_SQL = "SELECT count(*) FROM runs WHERE actor = $1"


async def _app(db: str) -> tuple[Any, Any, Any, dict[str, str]]:
    """(app, its engine, its store, the auth header of an API key for alice)."""
    from apps.core_api.main import create_app
    from chad_memory import ApiKeyStore, PostgresStore
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.settings import Settings

    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    factory = get_session_factory(engine)
    secret = (await ApiKeyStore(factory).create_key("alice")).secret
    app = create_app(engine=engine, settings=Settings(auth_mode="api_key"))
    return app, engine, PostgresStore(factory), {"Authorization": f"Bearer {secret}"}


async def steps_over_http(requests: int) -> list[list[Any]]:
    from chad_memory import RunCreate, StepCreate

    db = await create_database("bench_http_steps")
    app, engine, store, auth = await _app(db)
    conn = await raw_connection(db)
    rows: list[list[Any]] = []
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", headers=auth
            ) as client,
        ):
            http_ms: list[float] = []
            lib_ms: list[float] = []
            copy_ms: list[float] = []
            body_bytes = 0
            for r in range(requests):
                # One fresh run per request for each path, so every path writes 1,000 rows
                # into the same-sized indexes.
                run = (await client.post("/runs", json={"name": f"http-{r}"})).json()["id"]
                body = [
                    {"step_index": i, "name": "tool", "type": "tool", "input": payload(i)}
                    for i in range(1000)
                ]
                content = json.dumps(body).encode()
                body_bytes = len(content)
                t0 = time.perf_counter()
                response = await client.post(
                    f"/runs/{run}/steps",
                    content=content,
                    headers={"Content-Type": "application/json"},
                )
                http_ms.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 201, response.text[:300]
                assert len(response.json()) == 1000

                lib_run = await store.save_run(RunCreate(actor="alice", name=f"lib-{r}"))
                t0 = time.perf_counter()
                await store.save_steps(
                    [
                        StepCreate(
                            run_id=lib_run.id, step_index=i, name="tool", type="tool", input=p
                        )
                        for i, p in ((i, payload(i)) for i in range(1000))
                    ]
                )
                lib_ms.append((time.perf_counter() - t0) * 1000)

                copy_run = await store.save_run(RunCreate(actor="alice", name=f"copy-{r}"))
                t0 = time.perf_counter()
                await copy_steps(conn, copy_run.id, range(1000))
                copy_ms.append((time.perf_counter() - t0) * 1000)
        say(f"POST 1,000 steps: body {body_bytes:,} bytes")
        copy_p50 = statistics.median(copy_ms)
        for name, samples in (
            ("POST /runs/{id}/steps, 1,000 steps", http_ms),
            ("save_steps, 1,000 steps (library)", lib_ms),
            ("COPY of the same 1,000 rows (raw)", copy_ms),
        ):
            p50 = statistics.median(samples)
            rows.append(
                [
                    name,
                    p50,
                    percentile(samples, 0.95),
                    f"{1000 * 1000 / p50:,.0f}",
                    p50 / copy_p50,
                ]
            )
            say(f"{name}: p50 {p50:.1f} ms")
    finally:
        await conn.close()
        await engine.dispose()
        await drop_database(db)
    return rows


async def bulk_runs(conn: Any, actor: str, n: int) -> None:
    """n runs of one actor, one second apart, through binary COPY (1M in ~10-20 s here)."""
    now = datetime.now(UTC)
    step = 100_000
    for start in range(0, n, step):
        await conn.copy_records_to_table(
            "runs",
            records=[
                (uuid.uuid4(), actor, f"run {g}", "succeeded", t, t)
                for g in range(start, min(n, start + step))
                for t in (now - timedelta(seconds=g),)
            ],
            columns=["id", "actor", "name", "status", "created_at", "updated_at"],
        )


async def runs_over_http(n: int, requests: int) -> tuple[list[list[Any]], str]:
    from chad_memory.stores.paging import CursorCodec

    db = await create_database("bench_http_runs")
    app, engine, _, auth = await _app(db)
    conn = await raw_connection(db)
    rows: list[list[Any]] = []
    try:
        t0 = time.perf_counter()
        await bulk_runs(conn, "alice", n)
        await bulk_runs(conn, "bob", 1000)
        await conn.execute("VACUUM ANALYZE runs")
        took = time.perf_counter() - t0
        say(f"runs: {n:,} for alice (+1,000 for bob) COPY-loaded in {took:.0f} s")
        deep = await conn.fetchrow(
            "SELECT created_at, id FROM runs WHERE actor = 'alice' "
            "ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
            int(n * 0.9),
        )
        cursor = CursorCodec().encode("runs", [deep["created_at"], deep["id"]])
        deep_sql = PAGE_SQL.format(cursor="AND (created_at, id) < ($2, $3) ")
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", headers=auth
            ) as client,
        ):

            async def get(params: dict[str, Any]) -> httpx.Response:
                response = await client.get("/runs", params=params)
                assert response.status_code == 200, response.text[:300]
                return response

            first = await get({"limit": 50})
            exact_flag = first.headers.get("X-Total-Exact")
            say(f"first page total={first.json()['total']:,} X-Total-Exact={exact_flag}")

            async def raw_first(i: int) -> Any:
                await conn.fetch(PAGE_SQL.format(cursor=""), "alice")
                return await conn.fetchval(CAPPED_COUNT_SQL, "alice")

            async def raw_deep(i: int) -> Any:
                await conn.fetch(deep_sql, "alice", deep["created_at"], deep["id"])
                return await conn.fetchval(CAPPED_COUNT_SQL, "alice")

            async def raw_exact(i: int) -> Any:
                await conn.fetch(PAGE_SQL.format(cursor=""), "alice")
                return await conn.fetchval(EXACT_COUNT_SQL, "alice")

            cases: list[tuple[str, dict[str, Any], Any]] = [
                ("first page (total capped at 10,000)", {"limit": 50}, raw_first),
                ("deep cursor page (90%)", {"limit": 50, "cursor": cursor}, raw_deep),
                (
                    "first page, exact_total=true",
                    {"limit": 50, "exact_total": "true"},
                    raw_exact,
                ),
            ]
            for name, params, raw in cases:

                async def lib(i: int, params: dict[str, Any] = params) -> httpx.Response:
                    return await get(params)

                p50, p95, _ = await timed_passes(lib, requests)
                raw_p50, _, _ = await timed_passes(raw, requests)
                rows.append([f"{n:,}", name, p50, p95, raw_p50, p50 / raw_p50])
                say(f"GET /runs {n:,} {name}: p50 {p50:.2f} p95 {p95:.2f} raw {raw_p50:.2f}")
        plans = []
        for label, sql, args in (
            ("deep cursor page", deep_sql, ("alice", deep["created_at"], deep["id"])),
            ("total, capped", CAPPED_COUNT_SQL, ("alice",)),
            ("total, exact", EXACT_COUNT_SQL, ("alice",)),
        ):
            plan = await conn.fetch("EXPLAIN " + sql, *args)
            plans.append(f"-- {label}\n" + "\n".join(r[0] for r in plan))
        explain = "\n".join(plans)
    finally:
        await conn.close()
        await engine.dispose()
        await drop_database(db)
    return rows, explain


async def main(requests: int, run_sizes: list[int]) -> None:
    say(f"load: {load_line()}")
    step_rows = await steps_over_http(requests)
    print("### HTTP: POST /runs/{id}/steps, 1,000 steps (~370-byte JSON payloads) a request")
    print()
    print(
        table(
            ["what", "p50 ms", "p95 ms", "rows/s at p50", "p50 / COPY p50"],
            step_rows,
        )
    )
    print()
    list_rows: list[list[Any]] = []
    explains: list[str] = []
    for n in run_sizes:
        rows, explain = await runs_over_http(n, requests * 2)
        list_rows += rows
        explains.append(f"-- {n:,} runs\n{explain}")
    print("### HTTP: GET /runs for one actor, limit 50")
    print()
    print(
        table(
            ["runs", "request", "p50 ms", "p95 ms", "raw asyncpg p50 ms", "HTTP / raw"],
            list_rows,
        )
    )
    print()
    by = {(r[0], r[1]): r for r in list_rows}
    if len(run_sizes) == 2:
        small, large = (f"{n:,}" for n in run_sizes)
        for case in dict.fromkeys(r[1] for r in list_rows):
            a, b = by[(small, case)], by[(large, case)]
            print(
                f"- {case}: {large} / {small} runs = {b[2] / a[2]:.2f}x at p50, "
                f"{b[3] / a[3]:.2f}x at p95"
            )
        print()
    print("EXPLAIN:")
    print()
    print("```")
    print("\n\n".join(explains))
    print("```")
    print()
    print(f"Load when the script finished: `{load_line()}`.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=int(os.environ.get("HTTP_REQUESTS", "20")))
    parser.add_argument("--runs", default=os.environ.get("RUN_SIZES", "10000,1000000"))
    args = parser.parse_args()
    asyncio.run(main(args.requests, [int(x) for x in args.runs.split(",")]))
