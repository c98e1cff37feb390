"""A real `chad-memory serve` process for tests that talk to it over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.api.test_serve_process import CLI, free_port


@asynccontextmanager
async def serve(database_url: str) -> AsyncIterator[tuple[str, int]]:
    """`chad-memory serve` on a free port; yields its base URL and port, stops it."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.returncode is None, "serve exited early"
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not start"
                await asyncio.sleep(0.2)
        yield base, port
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=30)
