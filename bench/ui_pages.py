"""The dashboard's run page beside the API calls that read the same data.

Usage: python -m bench.ui_pages [--requests 10] [--steps 1000,10000]

For a run of N steps (~370-byte JSON inputs) with 100 LLM calls: `GET /ui/runs/{id}`
(signed in, HTML: one page of 200 waterfall rows) beside the API reads of the same rows:
`GET /runs/{id}` + `/steps?limit=200` + `/llm-calls`, over HTTP to uvicorn on 127.0.0.1
(one worker, in this process), sequential. The ratio is the page's price over the API's;
the page should cost no more than those three reads. Pool checkouts per request are
counted too (the pool's checkout event).
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
import uvicorn
from sqlalchemy import event

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
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
        )
        serving = asyncio.create_task(server.serve())
        for _ in range(600):  # bounded: 30 s for the server to listen
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        checkouts = [0]

        def counted(*_: Any) -> None:
            checkouts[0] += 1

        event.listen(engine.sync_engine, "checkout", counted)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            form = (await c.get("/ui/login")).text
            match = re.search(r'name="csrf" value="([^"]+)"', form)
            assert match
            signed = await c.post("/ui/login", data={"api_key": secret, "csrf": match[1]})
            assert signed.status_code == 303
            auth = {"Authorization": f"Bearer {secret}"}
            page_ms: list[float] = []
            api_ms: list[float] = []
            size = 0
            await c.get(f"/ui/runs/{run.id}")  # templates compiled, statements prepared
            for _ in range(requests):
                before = checkouts[0]
                t0 = time.perf_counter()
                page = await c.get(f"/ui/runs/{run.id}")
                page_ms.append((time.perf_counter() - t0) * 1000)
                assert page.status_code == 200
                size = len(page.content)
                page_checkouts = checkouts[0] - before
                t0 = time.perf_counter()
                for path in ("", "/steps?limit=200", "/llm-calls"):
                    answer = await c.get(f"/runs/{run.id}{path}", headers=auth)
                    assert answer.status_code == 200
                api_ms.append((time.perf_counter() - t0) * 1000)
        server.should_exit = True
        await serving
        page_p50, api_p50 = statistics.median(page_ms), statistics.median(api_ms)
        return [steps, size // 1024, page_checkouts, page_p50, api_p50, page_p50 / api_p50]
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
            [
                "steps",
                "page KiB",
                "page checkouts",
                "GET /ui/runs/{id} p50 ms",
                "3 API reads p50 ms",
                "page / API",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
