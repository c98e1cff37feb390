"""What every benchmark shares: the embedded server, scratch databases, timing, tables."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", BENCH_DIR.parent / ".bench-data" / "pg"))
REPEATS = int(os.environ.get("REPEATS", "3"))
# The embedded server starts with PostgreSQL's 128MB; a 100k x 1536 index is ~0.8 GB, and
# reading it through a too-small buffer pool measures page copying, not the index.
SHARED_BUFFERS = os.environ.get("BENCH_SHARED_BUFFERS", "2GB")


def free_port() -> int:
    """A free loopback port for a server to listen on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def server_uri() -> str:
    """libpq URI of the embedded server (started on first use; data under DATA_DIR)."""
    from chad_memory.embedded import start_embedded_server

    server = start_embedded_server(DATA_DIR)
    if SHARED_BUFFERS.lower() not in server.psql("SHOW shared_buffers").lower():
        say(f"setting shared_buffers = {SHARED_BUFFERS} on the bench server and restarting it")
        server.psql(f"ALTER SYSTEM SET shared_buffers = '{SHARED_BUFFERS}'")
        server.stop()
        server.start()
    uri: str = server.get_uri("postgres")
    return uri


def with_db(uri: str, name: str) -> str:
    return uri.replace("/postgres?", f"/{name}?", 1)


def asyncpg_dsn(uri: str) -> str:
    return uri


def sqlalchemy_url(uri: str) -> str:
    return "postgresql+asyncpg://" + uri.split("://", 1)[1]


async def create_database(prefix: str, *, migrate: bool = True) -> str:
    """A fresh database (libpq URI) on the bench server, migrated by Alembic when asked."""
    uri = server_uri()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(uri)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    db = with_db(uri, name)
    if migrate:
        import asyncio

        from chad_memory.migrations import upgrade

        # env.py runs its own event loop, so Alembic goes to a thread.
        await asyncio.to_thread(upgrade, sqlalchemy_url(db))
    return db


async def drop_database(db: str) -> None:
    name = db.split("/", 3)[3].split("?", 1)[0]
    conn = await asyncpg.connect(server_uri())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def raw_connection(db: str) -> asyncpg.Connection:
    """A plain asyncpg connection with pgvector's binary codec: the raw-database baseline."""
    conn = await asyncpg.connect(db)
    await register_vector(conn)
    return conn


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def timed_passes(
    run_one: Callable[[int], Awaitable[Any]], count: int, repeats: int = REPEATS
) -> tuple[float, float, list[Any]]:
    """(median over passes of p50 ms, median of p95 ms, results of the last pass)."""
    p50s: list[float] = []
    p95s: list[float] = []
    results: list[Any] = []
    for _ in range(repeats):
        times: list[float] = []
        results = []
        for i in range(count):
            t0 = time.perf_counter()
            results.append(await run_one(i))
            times.append((time.perf_counter() - t0) * 1000)
        p50s.append(percentile(times, 0.5))
        p95s.append(percentile(times, 0.95))
    return statistics.median(p50s), statistics.median(p95s), results


def load_line() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "uptime unavailable"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
