"""What a FastAPI dependency costs per request, in-process (no network, no database).

Four routes that answer the same empty body: a path parameter with an actor dependency
and a store dependency (what our routes had), with the actor only, with `Request` only,
and with nothing. The ASGI app is called directly, 1,000 times per route per round, nine
rounds interleaving the routes; the figure is microseconds per request. It is why the
API's data routes take one `Caller` dependency (apps/core_api/auth.py).

    .venv/bin/python -m bench.fastapi_deps
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


async def actor(request: Request) -> str:
    return "a"


async def store(request: Request) -> object:
    return request.app


Actor = Annotated[str, Depends(actor)]
Store = Annotated[object, Depends(store)]


@app.get("/actor-and-store/{run_id}")
async def actor_and_store(run_id: uuid.UUID, who: Actor, s: Store) -> Response:
    return Response(b"{}")


@app.get("/actor/{run_id}")
async def actor_only(run_id: uuid.UUID, who: Actor) -> Response:
    return Response(b"{}")


@app.get("/request/{run_id}")
async def request_only(run_id: uuid.UUID, request: Request) -> Response:
    return Response(b"{}")


@app.get("/nothing")
async def nothing(request: Request) -> Response:
    return Response(b"{}")


async def call(path: str) -> None:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "app": app,
        "root_path": "",
        "scheme": "http",
        "server": ("bench", 80),
        "client": ("bench", 1),
        "http_version": "1.1",
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    await app(scope, receive, send)


async def main() -> None:
    run_id = uuid.uuid4()
    paths = [f"/actor-and-store/{run_id}", f"/actor/{run_id}", f"/request/{run_id}", "/nothing"]
    timings: dict[str, list[float]] = {path: [] for path in paths}
    for path in paths:
        for _ in range(500):
            await call(path)
    # Rounds interleave the routes, so a busy moment of the machine hits all of them.
    for _ in range(9):
        for path in paths:
            started = time.perf_counter()
            for _ in range(1000):
                await call(path)
            timings[path].append((time.perf_counter() - started) / 1000 * 1e6)
    print("| route | us per request (median of 9 rounds) | range |")
    print("|---|---|---|")
    for path, values in timings.items():
        low, high = min(values), max(values)
        name = path.split("/")[1]
        print(f"| {name} | {statistics.median(values):.1f} | {low:.1f}-{high:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
