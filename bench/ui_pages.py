"""The dashboard's run page beside the API calls that read the same data.

Usage: python -m bench.ui_pages [--requests 10] [--steps 1000,10000]

For a run of N steps (~370-byte JSON inputs) with 100 LLM calls: `GET /ui/runs/{id}`
(signed in, HTML: one page of 200 waterfall rows) beside what a client of the API reads
to draw the same page: `GET /runs/{id}` + `/steps` + `/llm-calls` + `/stats` (each child
list answers its first page, at most MAX_CHILDREN_PER_REQUEST rows), in-process (httpx
over ASGI), sequential. The ratio is the page's price over the API's.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.common import create_database, drop_database, load_line, say, sqlalchemy_url, table
from bench.ingest import payload


async def measure(steps: int, requests: int) -> list[Any]:
    from pydantic import SecretStr

    from apps.core_api.main import create_app
    from chad_memory import ApiKeyStore, LLMCallCreate, PostgresStore, RunCreate, StepCreate
    from chad_memory.database import create_engine, get_session_factory
    from chad_memory.settings import Settings

    db = await create_database("bench_ui")
    engine = create_engine(sqlalchemy_url(db), pool_size=2)
    try:
        factory = get_session_factory(engine)
        secret = (await ApiKeyStore(factory).create_key("alice")).secret
        store = PostgresStore(factory)
        run = await store.save_run(RunCreate(actor="alice", name="bench", status="succeeded"))
        start = datetime.now(UTC)
        for first in range(0, steps, 5000):
            await store.save_steps(
                [
                    StepCreate(
                        run_id=run.id,
                        step_index=i,
                        name="tool",
                        type="tool",
                        input=payload(i),
                        started_at=start + timedelta(milliseconds=i),
                        duration_ms=1.0,
                    )
                    for i in range(first, min(first + 5000, steps))
                ]
            )
        for i in range(100):
            await store.save_llm_call(
                LLMCallCreate(run_id=run.id, model="m", prompt_tokens=i, latency_ms=float(i))
            )
        settings = Settings(auth_mode="api_key", ui_session_secret=SecretStr("b" * 32))
        app = create_app(engine=engine, settings=settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c,
        ):
            form = (await c.get("/ui/login")).text
            match = re.search(r'name="csrf" value="([^"]+)"', form)
            assert match
            signed = await c.post("/ui/login", data={"api_key": secret, "csrf": match[1]})
            assert signed.status_code == 303
            auth = {"Authorization": f"Bearer {secret}"}
            page_ms: list[float] = []
            api_ms: list[float] = []
            size = 0
            for _ in range(requests):
                t0 = time.perf_counter()
                page = await c.get(f"/ui/runs/{run.id}")
                page_ms.append((time.perf_counter() - t0) * 1000)
                assert page.status_code == 200
                size = len(page.content)
                t0 = time.perf_counter()
                for path in ("", "/steps", "/llm-calls", "/stats"):
                    answer = await c.get(f"/runs/{run.id}{path}", headers=auth)
                    assert answer.status_code == 200
                api_ms.append((time.perf_counter() - t0) * 1000)
        page_p50, api_p50 = statistics.median(page_ms), statistics.median(api_ms)
        return [steps, size // 1024, page_p50, api_p50, page_p50 / api_p50]
    finally:
        await engine.dispose()
        await drop_database(db)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--steps", default="1000,10000")
    args = parser.parse_args()
    rows = []
    for n in (int(x) for x in args.steps.split(",")):
        say(f"run page with {n} steps")
        rows.append(await measure(n, args.requests))
    print(load_line())
    print(
        table(
            ["steps", "page KiB", "GET /ui/runs/{id} p50 ms", "API reads p50 ms", "page / API"],
            rows,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
