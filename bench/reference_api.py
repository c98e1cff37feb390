"""Hand-written FastAPI + asyncpg handlers: the yardstick for `make bench-http`.

Each route does what the fastest honest one-file service would: look the API key up
(one indexed statement), run one statement, send the rows back as JSON. No ownership
checks beyond the actor in the WHERE clause, no validation beyond FastAPI's own, no
logging, no retries. `bench/http_wrk.py` serves this beside chad-memory on the same
database, one uvicorn worker each, and reports our requests/s as a ratio of these.

Run alone: DATABASE_URL=postgresql://... uvicorn bench.reference_api:app
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response

RUN_COLUMNS = (
    "id, actor, name, agent, status, trace_id, idempotency_key, thread_id, metadata, tags,"
    " created_at, updated_at, started_at, completed_at"
)


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=_default), status, media_type="application/json")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)

    async def init(conn: asyncpg.Connection) -> None:
        for kind in ("json", "jsonb"):
            await conn.set_type_codec(
                kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )

    # The vector index's search setting, as a hand-written service would configure it:
    # once per connection (bench/http_wrk.py passes what chad-memory's calibration chose).
    settings = {
        name: os.environ[env]
        for name, env in (("ivfflat.probes", "IVFFLAT_PROBES"), ("hnsw.ef_search", "EF_SEARCH"))
        if os.environ.get(env)
    }
    app.state.pool = await asyncpg.create_pool(
        url, min_size=4, max_size=20, init=init, server_settings=settings
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


async def _actor(conn: asyncpg.Connection, request: Request) -> str:
    header = request.headers.get("authorization", "")
    digest = hashlib.sha256(header.removeprefix("Bearer ").encode()).hexdigest()
    actor: str | None = await conn.fetchval(
        "SELECT actor FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", digest
    )
    if actor is None:
        raise HTTPException(401)
    return actor


@app.get("/runs")
async def list_runs(request: Request, limit: int = 50) -> Response:
    async with request.app.state.pool.acquire() as conn:
        actor = await _actor(conn, request)
        rows = await conn.fetch(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE actor = $1"
            " ORDER BY created_at DESC, id DESC LIMIT $2",
            actor,
            limit,
        )
    return _json({"items": [dict(r) for r in rows]})


@app.post("/runs")
async def create_run(request: Request) -> Response:
    body = await request.json()
    async with request.app.state.pool.acquire() as conn:
        actor = await _actor(conn, request)
        row = await conn.fetchrow(
            "INSERT INTO runs (id, actor, name, status, metadata, tags)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
            uuid.uuid4(),
            actor,
            body.get("name"),
            body.get("status", "pending"),
            body.get("metadata", {}),
            body.get("tags", []),
        )
    return _json(dict(row), 201)


@app.get("/runs/{run_id}")
async def get_run(run_id: uuid.UUID, request: Request) -> Response:
    async with request.app.state.pool.acquire() as conn:
        actor = await _actor(conn, request)
        row = await conn.fetchrow("SELECT * FROM runs WHERE id = $1 AND actor = $2", run_id, actor)
    if row is None:
        raise HTTPException(404)
    return _json(dict(row))


@app.post("/runs/{run_id}/steps")
async def add_step(run_id: uuid.UUID, request: Request) -> Response:
    body = await request.json()
    async with request.app.state.pool.acquire() as conn:
        await _actor(conn, request)
        row = await conn.fetchrow(
            "INSERT INTO steps (id, run_id, step_index, name, status, input, output, metadata)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
            uuid.uuid4(),
            run_id,
            body["step_index"],
            body.get("name"),
            body.get("status", "succeeded"),
            body.get("input"),
            body.get("output"),
            body.get("metadata", {}),
        )
    return _json([dict(row)], 201)


@app.post("/memory/search")
async def search(request: Request) -> Response:
    body = await request.json()
    query = "[" + ",".join(map(str, body["embedding"])) + "]"
    async with request.app.state.pool.acquire() as conn:
        actor = await _actor(conn, request)
        rows = await conn.fetch(
            "SELECT id, actor, namespace, source_type, source_id, run_id, content, metadata,"
            " created_at, 1 - (embedding <=> $1::vector) AS score FROM embeddings"
            " WHERE actor = $2 ORDER BY embedding <=> $1::vector LIMIT $3",
            query,
            actor,
            body.get("k", 10),
        )
    return _json({"items": [dict(r) for r in rows], "at": datetime.now(UTC).isoformat()})
